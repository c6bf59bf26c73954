"""Agent and manager together: a real TLS manager on loopback and real ``vigil agent run`` processes.

The manager is :class:`vigil.manager.testing.LiveManager` (ports chosen by the kernel, a fresh
self-signed certificate the agent pins by fingerprint). Every agent is a subprocess stopped in a
``finally`` (SIGTERM, then SIGKILL). Tests that need kernel sensors run only as root (CI is root) and
hold the audit lock shared with the sensor tests; they check that no vigil audit rule is left.
"""

from __future__ import annotations

import dataclasses
import fcntl
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vigil.manager.server import ManagerServer
from vigil.manager.testing import LiveManager

AUDIT_LOCK = "/run/vigil-audit-tests.lock"  # shared with the sensor tests: audit state is global
ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: kernel sources (CI runs as root)")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, agent: Agent | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if agent is not None and agent.proc is not None and agent.proc.poll() is not None:
            raise AssertionError(f"agent exited ({agent.proc.returncode}) waiting for {what}:\n{agent.log_text()}")
        time.sleep(0.05)
    tail = agent.log_text()[-3000:] if agent is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


class Agent:
    """One ``vigil agent run`` subprocess managed by ``live``."""

    def __init__(self, tmp: Path, live: LiveManager, *, kernel: bool, extra: str = "", **top: Any) -> None:
        self.tmp = tmp
        self.data = tmp / "agent"
        self.config = tmp / "agent.toml"
        self.log = tmp / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None
        lines = [f'data_dir = "{self.data}"', "stats_interval = 1", "drain_timeout = 5"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in top.items()]
        lines += [
            "[rules]",
            "update_interval = 1",
            "[manager]",
            f'url = "{live.endpoint_url}"',
            f'uuid = "{live.endpoint_uuid}"',
            f'key = "{live.endpoint_key}"',
            f'fingerprint = "{live.fingerprint}"',
            "timeout = 5",
        ]
        if not kernel:
            lines += ["[sensors]", "kernel = false"]
        self.config.write_text("\n".join(lines) + "\n" + extra)

    def start(self) -> Agent:
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vigil", "-v", "agent", "run", "--config", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        wait_for(lambda: "agent running" in self.log_text(), 60, "agent start", self)
        return self

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 30) -> int | None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveManager]:
    with LiveManager(tmp_path / "manager") as manager:
        yield manager


@pytest.fixture
def audit_lock() -> Iterator[None]:
    with open(AUDIT_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if shutil.which("auditctl"):
        rules = subprocess.run(["auditctl", "-l"], capture_output=True, text=True, check=False).stdout
        assert "vigil" not in rules, f"vigil audit rules left behind:\n{rules}"


def stored(live: LiveManager, kind: str = "logs") -> list[dict[str, Any]]:
    """Every event (or detection) of the endpoint in the last day, page by page."""
    out: list[dict[str, Any]] = []
    with live.admin() as admin:
        while True:
            page = admin._search(live.endpoint_uuid, kind, last="24h", limit=10000, skip=len(out))
            out.extend(page)
            if len(page) < 10000:
                return out


def replay_file(path: Path, n: int, tag: str) -> Path:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000001Z", time.gmtime())
    with path.open("w") as f:
        for i in range(n):
            event = {
                "Event": {
                    "System": {
                        "Channel": "Linux-Sysmon/Operational",
                        "Computer": "replay-host",
                        "EventID": 1,
                        "TimeCreated": {"SystemTime": now},
                    },
                    "EventData": {"Image": f"/usr/bin/tool{i}", "CommandLine": f"tool {tag} {i}", "N": str(i)},
                }
            }
            f.write(json.dumps(event) + "\n")
    return path


def replayed(live: LiveManager, tag: str) -> list[dict[str, Any]]:
    return [
        e for e in stored(live) if f" {tag} " in e["Event"].get("EventData", {}).get("CommandLine", "")
    ]


def restart_manager(live: LiveManager) -> ManagerServer:
    """Start a manager again on the same data directory, ports and certificate."""
    config = dataclasses.replace(
        live.config, admin_port=live.server.admin_port, endpoint_port=live.server.endpoint_port
    )
    server = ManagerServer(config, live.extra_routers)
    server.start()
    return server


# -- 4. outage and crash ----------------------------------------------------------------------------


def test_outage_every_event_arrives_once_after_the_manager_comes_back(tmp_path: Path, live: LiveManager) -> None:
    n = 300
    live.server.stop()  # the manager is down before the agent produces anything
    replay = replay_file(tmp_path / "replay.jsonl", n, "outage")
    agent = Agent(tmp_path, live, kernel=False, log_all=True, extra=f'replay = "{replay}"\n')
    server = None
    try:
        agent.start()
        spool = agent.data / "spool" / "events.db"
        wait_for(lambda: _spooled(spool) >= n, 30, f"{n} events spooled", agent)
        time.sleep(2)  # the forwarder keeps failing meanwhile: nothing is lost
        server = restart_manager(live)
        live.server = server
        wait_for(lambda: len(replayed(live, "outage")) >= n, 60, "all events on the manager", agent)
        time.sleep(2)  # anything sent twice would land now
        events = replayed(live, "outage")
        assert len(events) == n
        assert sorted(int(e["Event"]["EventData"]["N"]) for e in events) == list(range(n))
        assert agent.stop() == 0
    finally:
        agent.kill()
    assert "forwarding" in agent.log_text()  # it did fail while the manager was away


def _spooled(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        return int(con.execute("SELECT COUNT(*) FROM queue").fetchone()[0])


def _n(event: dict[str, Any]) -> int:
    return int(event["Event"]["EventData"]["N"])


def _spooled_numbers(db: Path) -> set[int]:
    import sqlite3

    with sqlite3.connect(db) as con:
        bodies = [row[0] for row in con.execute("SELECT body FROM queue")]
    out = set()
    for body in bodies:
        event = json.loads(body)
        if event["Event"]["System"]["Channel"] != "Vigil/Operational":
            out.add(_n(event))
    return out


def test_sigkill_while_batches_are_in_flight_loses_and_duplicates_nothing(
    tmp_path: Path, live: LiveManager
) -> None:
    n = 20000
    replay = replay_file(tmp_path / "replay.jsonl", n, "crash")
    agent = Agent(tmp_path, live, kernel=False, log_all=True, extra=f'replay = "{replay}"\n')
    try:
        agent.start()
        wait_for(lambda: len(replayed(live, "crash")) > 0, 30, "the first batches", agent)
        agent.kill()  # SIGKILL, mid-stream
        time.sleep(1)  # a batch the manager was still storing lands
        before = {_n(e) for e in replayed(live, "crash")}
        assert 0 < len(before) < n, f"the kill should land mid-stream, {len(before)} of {n} were stored"
        # What the pipeline had handed to the output and the manager had not confirmed is in the
        # spool (events still in the in-memory queue at the kill were never handed over).
        spooled = _spooled_numbers(agent.data / "spool" / "events.db")
        assert spooled, "the kill should leave unconfirmed events in the spool"
        # Restart without the replay: only what the spool kept is sent.
        agent.config.write_text(agent.config.read_text().replace(f'replay = "{replay}"\n', ""))
        agent.start()
        expected = before | spooled
        wait_for(lambda: len(replayed(live, "crash")) >= len(expected), 60, "the spool drained", agent)
        wait_for(lambda: _spooled(agent.data / "spool" / "events.db") == 0, 30, "an empty spool", agent)
        time.sleep(2)  # anything sent twice would land now
        numbers = [_n(e) for e in replayed(live, "crash")]
        assert len(numbers) == len(set(numbers)), "an event was stored twice"
        assert set(numbers) == expected, "an event that was spooled did not arrive"
        assert agent.stop() == 0
    finally:
        agent.kill()
