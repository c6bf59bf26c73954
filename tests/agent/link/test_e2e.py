"""Agent and manager together: a real TLS manager on loopback and real ``vigil agent run`` processes.

The manager is :class:`vigil.manager.testing.LiveManager` (ports chosen by the kernel, a fresh
self-signed certificate the agent pins by fingerprint). Every agent is a subprocess stopped in a
``finally`` (SIGTERM, then SIGKILL). Tests that need kernel sensors run only as root (CI is root) and
hold the audit lock shared with the sensor tests; they check that no vigil audit rule is left.
"""

from __future__ import annotations

import dataclasses
import fcntl
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
from tests.agent.test_containment import Lab, lab  # noqa: F401 - the namespace lab fixture

from vigil.manager.server import ManagerServer
from vigil.manager.testing import LiveManager

AUDIT_LOCK = "/run/vigil-audit-tests.lock"  # shared with the sensor tests: audit state is global
STARTED: list[int] = []  # pids of the agents this module started (their audit rule keys)
ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: kernel sources (CI runs as root)")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, agent: Agent | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if agent is not None and agent.proc is not None and agent.proc.poll() is not None:
            raise AssertionError(
                f"agent exited ({agent.proc.returncode}) waiting for {what}:\n{agent.log_text()}"
            )
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
        STARTED.append(self.proc.pid)
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
    STARTED.clear()
    with open(AUDIT_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if shutil.which("auditctl"):
        rules = subprocess.run(["auditctl", "-l"], capture_output=True, text=True, check=False).stdout
        # Only our agents' keys (vigil-<pid>-...): other agents on this machine are not ours.
        keys = {
            word.split("=", 1)[1]
            for word in rules.split()
            if any(word.startswith(f"key=vigil-{pid}-") for pid in STARTED)
        }
        for key in keys:  # removed even though the test fails below
            subprocess.run(["auditctl", "-D", "-k", key], capture_output=True, check=False)
        assert not keys, f"audit rules left behind by our agents:\n{rules}"


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
    # Distinct times: the admin search pages by time, and ties would make skip-paging unstable.
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    with path.open("w") as f:
        for i in range(n):
            event = {
                "Event": {
                    "System": {
                        "Channel": "Linux-Sysmon/Operational",
                        "Computer": "replay-host",
                        "EventID": 1,
                        "TimeCreated": {"SystemTime": f"{now}.{i:09d}Z"},
                    },
                    "EventData": {
                        "Image": f"/usr/bin/tool{i}",
                        "CommandLine": f"tool {tag} {i}",
                        "N": str(i),
                    },
                }
            }
            f.write(json.dumps(event) + "\n")
    return path


def replayed(live: LiveManager, tag: str) -> list[dict[str, Any]]:
    return [e for e in stored(live) if f" {tag} " in e["Event"].get("EventData", {}).get("CommandLine", "")]


def restart_manager(live: LiveManager) -> ManagerServer:
    """Start a manager again on the same data directory, ports and certificate."""
    config = dataclasses.replace(
        live.config, admin_port=live.server.admin_port, endpoint_port=live.server.endpoint_port
    )
    server = ManagerServer(config, live.extra_routers)
    server.start()
    return server


# -- 4. outage and crash ----------------------------------------------------------------------------


def test_outage_every_event_arrives_once_after_the_manager_comes_back(
    tmp_path: Path, live: LiveManager
) -> None:
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
        agent.stop()  # SIGTERM first: the agent removes its audit rules; SIGKILL after 30 s
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
        # Restart without the replay: only what the spool kept is sent. The first run pushed its
        # config (with the replay) to the manager, which would otherwise send it back.
        with live.admin() as admin:
            assert admin.endpoint_config(live.endpoint_uuid)["sensors"]["replay"] == str(replay)
            admin.delete_endpoint_config(live.endpoint_uuid)
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
        agent.stop()  # SIGTERM first: the agent removes its audit rules; SIGKILL after 30 s


# -- real processes (root: kernel sensors) -----------------------------------------------------------

KERNEL = '[sensors]\nsources = ["proc_connector", "audit", "fanotify_exec"]\n'
NO_ACTIONS = "[actions]\nmedium = []\nhigh = []\ncritical = []\n"


def unique_binary(tmp: Path, name: str) -> Path:
    """A copy of /bin/true with unique trailing bytes: its own path and its own sha256."""
    binary = tmp / f"{name}-{os.getpid()}-{time.monotonic_ns()}"
    binary.write_bytes(Path("/bin/true").read_bytes() + os.urandom(32))
    binary.chmod(0o755)
    return binary


def gene_rule(name: str, match: str, criticality: int = 6) -> dict[str, Any]:
    return {
        "Name": name,
        "Meta": {"Events": {"Linux-Sysmon/Operational": [1]}, "Criticality": criticality, "Schema": "2.0.0"},
        "Matches": [match],
        "Condition": "$m",
    }


def detections_of(live: LiveManager, signature: str) -> list[dict[str, Any]]:
    return [d for d in stored(live, "detections") if signature in d["Event"]["Detection"]["Signature"]]


def _read_stream(
    live: LiveManager, out: list[dict[str, Any]], ready: threading.Event, stop: threading.Event
) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    uri = live.admin_url.replace("https", "wss") + "/stream/detections"
    with connect(uri, ssl=live.ssl_context, additional_headers={"X-Api-Key": live.admin_key}) as ws:  # type: ignore[arg-type]
        ready.set()
        while not stop.is_set():
            try:
                out.append(json.loads(ws.recv(timeout=0.2)))
            except TimeoutError:
                continue
            except ConnectionClosed:
                return


@ROOT
@pytest.mark.root
def test_exec_detection_is_searchable_within_5s_and_streamed(
    tmp_path: Path, live: LiveManager, audit_lock: None
) -> None:
    binary = unique_binary(tmp_path, "vigil-e2e-detect")
    agent = Agent(tmp_path, live, kernel=True, extra=KERNEL + NO_ACTIONS)
    (agent.data / "rules").mkdir(parents=True)
    rule = gene_rule("E2eExecDetected", f"$m: Image = '{binary}'")
    (agent.data / "rules" / "local.gen").write_text(json.dumps(rule))
    streamed: list[dict[str, Any]] = []
    ready, stop = threading.Event(), threading.Event()
    reader = threading.Thread(target=_read_stream, args=(live, streamed, ready, stop), daemon=True)
    reader.start()
    try:
        assert ready.wait(10)
        agent.start()
        started = time.monotonic()
        subprocess.run([str(binary), "e2e"], check=True)
        [found] = wait_for(
            lambda: detections_of(live, "E2eExecDetected"), 5, "the detection on the manager", agent
        )
        elapsed = time.monotonic() - started
        wait_for(
            lambda: [d for d in streamed if "E2eExecDetected" in str(d)], 5, "the streamed detection", agent
        )
        assert agent.stop() == 0
    finally:
        stop.set()
        agent.stop()
        reader.join(5)
    assert elapsed < 5
    assert found["Event"]["EventData"]["Image"] == str(binary)
    assert found["Event"]["EdrData"]["Endpoint"]["UUID"] == live.endpoint_uuid


@ROOT
@pytest.mark.root
def test_rule_and_ioc_from_the_admin_api_take_effect_and_a_bad_rule_never_reaches_the_agent(
    tmp_path: Path, live: LiveManager, audit_lock: None
) -> None:
    import hashlib
    import uuid

    by_rule = unique_binary(tmp_path, "vigil-e2e-rule")
    by_ioc = unique_binary(tmp_path, "vigil-e2e-ioc")
    sha256 = hashlib.sha256(by_ioc.read_bytes()).hexdigest()
    agent = Agent(tmp_path, live, kernel=True, extra=KERNEL + NO_ACTIONS)
    try:
        agent.start()
        database = agent.data / "rules" / "database.gen"
        with live.admin() as admin:
            admin.add_rules([gene_rule("E2eRuleFromManager", f"$m: Image = '{by_rule}'")])
            admin.add_rules(
                [
                    gene_rule(
                        "E2eIocHash", "$m: extract('SHA256=(?P<sha256>[A-Fa-f0-9]{64})', Hashes) in edr_iocs"
                    )
                ]
            )
            admin.add_iocs(
                [
                    {
                        "uuid": str(uuid.uuid4()),
                        "guuid": str(uuid.uuid4()),
                        "source": "e2e",
                        "value": sha256,
                        "type": "sha256",
                    }
                ]
            )
            wait_for(
                lambda: database.exists() and b"E2eIocHash" in database.read_bytes(), 10, "the rules", agent
            )
            containers = agent.data / "containers" / "edr_iocs.cont"
            wait_for(lambda: containers.exists() and sha256 in containers.read_text(), 10, "the IoC", agent)
            wait_for(lambda: "engine reloaded" in agent.log_text(), 10, "the engine reload", agent)
            time.sleep(1.5)  # both syncs run each interval (1 s): let the second reload land
            subprocess.run([str(by_rule)], check=True)
            subprocess.run([str(by_ioc)], check=True)
            wait_for(lambda: detections_of(live, "E2eRuleFromManager"), 10, "the rule's detection", agent)
            [hit] = wait_for(lambda: detections_of(live, "E2eIocHash"), 10, "the IoC's detection", agent)
            assert hit["Event"]["EventData"]["Image"] == str(by_ioc)
            # An invalid rule is refused by the manager and the agent keeps its rules.
            before = database.read_bytes()
            with pytest.raises(Exception) as refused:
                admin.add_rules([{"Name": "E2eBroken", "Matches": ["$m: Image ~= '('"], "Condition": "$m"}])
            assert "E2eBroken" in str(refused.value) or "400" in str(refused.value)
            time.sleep(2.5)  # two sync intervals
            assert database.read_bytes() == before
            assert b"E2eBroken" not in database.read_bytes()
        assert agent.stop() == 0
    finally:
        agent.stop()  # SIGTERM first: the agent removes its audit rules; SIGKILL after 30 s


@ROOT
@pytest.mark.root
def test_sigma_rule_from_the_admin_api_detects_on_the_agent_and_a_bad_one_is_refused(
    tmp_path: Path, live: LiveManager, audit_lock: None
) -> None:
    from vigil.client import APIError

    binary = unique_binary(tmp_path, "vigil-e2e-sigma")
    rule_id = "7d2c4a1e-9b3f-4c6d-8e5a-0f1b2c3d4e5f"
    title = "E2e Sigma Exec From Manager"
    rule = (
        f"title: {title}\nid: {rule_id}\nlogsource:\n    product: linux\n    category: process_creation\n"
        f"detection:\n    selection:\n        Image: '{binary}'\n    condition: selection\nlevel: high\n"
        "tags:\n    - attack.execution\n    - attack.t1059\n"
    )
    agent = Agent(tmp_path, live, kernel=True, extra=KERNEL + NO_ACTIONS)
    try:
        agent.start()
        local = agent.data / "rules" / "manager-sigma.yml"
        with live.admin() as admin:
            admin.add_sigma_rules(rule)
            wait_for(
                lambda: local.exists() and rule_id.encode() in local.read_bytes(),
                10,
                "the Sigma rules",
                agent,
            )
            wait_for(lambda: "sigma correlation rules" in agent.log_text(), 10, "the engine reload", agent)
            subprocess.run([str(binary), "sigma-e2e"], check=True)
            [hit] = wait_for(lambda: detections_of(live, title), 10, "the Sigma detection", agent)
            detection = hit["Event"]["Detection"]
            assert detection["Signature"] == [title] and detection["SigmaIDs"] == [rule_id]
            assert detection["Criticality"] == 8 and hit["Event"]["EventData"]["Image"] == str(binary)
            report = admin.report(live.endpoint_uuid)
            assert report is not None and report["count-by-signature"].get(title) == 1
            assert "T1059" in report["techniques"] and report["sum-rule-criticality"] >= 8
            # A bad upload is refused by the manager with its reason, and the agent keeps its set.
            before = local.read_bytes()
            with pytest.raises(APIError) as refused:
                admin.add_sigma_rules(
                    rule.replace(rule_id, "7d2c4a1e-9b3f-4c6d-8e5a-0f1b2c3d4e60").replace(
                        "Image:", "Image|bogus:"
                    )
                )
            assert refused.value.status == 400 and "Unknown modifier 'bogus'" in str(refused.value.data)
            time.sleep(2.5)  # two sync intervals
            assert local.read_bytes() == before
        assert agent.stop() == 0
    finally:
        agent.stop()  # SIGTERM first: the agent removes its audit rules; SIGKILL after 30 s


@ROOT
@pytest.mark.root
def test_admin_command_runs_on_the_agent_and_a_fetched_file_comes_back(
    tmp_path: Path, live: LiveManager, audit_lock: None
) -> None:
    secret = tmp_path / "evidence.txt"
    secret.write_bytes(b"evidence " + os.urandom(16).hex().encode())
    agent = Agent(tmp_path, live, kernel=True, extra=KERNEL + NO_ACTIONS)
    try:
        agent.start()
        with live.admin() as admin:
            admin.send_command(live.endpoint_uuid, f"stat {secret}", fetch_files=[str(secret)])
            done = wait_for(
                lambda: (c := admin.command(live.endpoint_uuid)).get("completed") and c,
                20,
                "the command",
                agent,
            )
            admin.send_command(live.endpoint_uuid, "processes")
            procs = wait_for(
                lambda: (c := admin.command(live.endpoint_uuid)).get("completed") and c,
                20,
                "processes",
                agent,
            )
        assert agent.stop() == 0
    finally:
        agent.stop()  # SIGTERM first: the agent removes its audit rules; SIGKILL after 30 s
    assert done["error"] == ""
    assert done["json"]["size"] == secret.stat().st_size
    [fetched] = done["fetch"].values() if isinstance(done["fetch"], dict) else done["fetch"]
    import base64

    assert base64.b64decode(fetched["data"]) == secret.read_bytes()
    assert procs["error"] == ""
    assert any(p["pid"] == agent.proc.pid for p in procs["json"])  # type: ignore[union-attr]


@ROOT
@pytest.mark.root
def test_filedump_artifact_is_downloadable_byte_identical(
    tmp_path: Path, live: LiveManager, audit_lock: None
) -> None:
    binary = unique_binary(tmp_path, "vigil-e2e-dump")
    agent = Agent(tmp_path, live, kernel=True, extra=KERNEL + '[actions]\nmedium = ["filedump"]\n')
    (agent.data / "rules").mkdir(parents=True)
    (agent.data / "rules" / "local.gen").write_text(
        json.dumps(gene_rule("E2eDump", f"$m: Image = '{binary}'"))
    )
    try:
        agent.start()
        subprocess.run([str(binary)], check=True)
        [alert] = wait_for(lambda: detections_of(live, "E2eDump"), 10, "the detection", agent)
        with live.admin() as admin:
            try:
                arts = wait_for(
                    lambda: [a for a in admin.artifacts(live.endpoint_uuid) if binary.name in json.dumps(a)],
                    30,
                    "the artifact on the manager",
                    agent,
                )
            except AssertionError as exc:  # say where the artifact stopped: dumped? uploaded? listed?
                raise AssertionError(f"{exc}\n{_artifact_trail(agent, admin, live)}") from None
            art = arts[0]
            ehash = alert["Event"]["EdrData"]["Event"]["Hash"]
            files = [f for f in art["files"] if binary.name in f["name"] and not f["name"].endswith(".json")]
            assert art["event-hash"] == ehash, "the alert links to its artifact"
            data = admin.artifact(
                live.endpoint_uuid, art["process-guid"], ehash, files[0]["name"], gunzip=True
            )
        assert agent.stop() == 0
    finally:
        agent.stop()  # SIGTERM first: the agent removes its audit rules; SIGKILL after 30 s
    assert data == binary.read_bytes()
    assert not list((agent.data / "dumps").rglob(f"*{binary.name}*")), "uploaded artifacts are deleted"


def _artifact_trail(agent: Agent, admin: Any, live: LiveManager) -> str:
    """What the agent logged about dumps and uploads, what its dump directory holds, and what
    the manager lists: the diagnosis of a missing artifact."""
    words = ("dump", "upload", "artifact", "crashed", "task ")
    lines = [line for line in agent.log_text().splitlines() if any(w in line for w in words)]
    dumps = agent.data / "dumps"
    files = sorted(str(p.relative_to(dumps)) for p in dumps.rglob("*")) if dumps.is_dir() else []
    listed = admin.artifacts(live.endpoint_uuid)
    return (
        "agent log lines:\n"
        + "\n".join(lines[-40:])
        + f"\nagent dump directory {dumps}: {files}\nmanager lists: {json.dumps(listed)[:3000]}"
    )


# -- containment from the admin API, inside namespaces the test creates ---------------------------------


def _in_netns(name: str) -> Callable[[], None]:
    """An executor initializer: move the worker thread into network namespace ``name``."""
    import ctypes

    def enter() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                raise OSError(ctypes.get_errno(), f"setns {name}")
        finally:
            os.close(fd)

    return enter


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@ROOT
@pytest.mark.root
def test_contain_and_uncontain_from_the_admin_api_in_a_test_namespace(tmp_path: Path, lab: Lab) -> None:  # noqa: F811
    """Agent in ``lab.ep``, manager on 10.231.1.2 in ``lab.mgr``: contained, the agent still talks
    to the manager (the uncontain command reaches it) and nothing else is reachable."""
    from concurrent.futures import ThreadPoolExecutor

    from vigil.agent.containment import is_contained, uncontain
    from vigil.client import AdminClient, pinned_ssl_context
    from vigil.manager.api.admin import create_endpoint, create_user
    from vigil.manager.config import ManagerConfig
    from vigil.manager.tls import generate_self_signed

    mgr = ThreadPoolExecutor(max_workers=1, initializer=_in_netns(lab.mgr))  # the manager's side
    config = ManagerConfig(
        data_dir=tmp_path / "manager",
        admin_host="127.0.0.1",
        admin_port=0,
        endpoint_host="10.231.1.2",
        endpoint_port=0,
        tls=True,
    )

    def start_manager() -> tuple[ManagerServer, str, dict[str, Any], str]:
        config.data_dir.mkdir(parents=True)
        config.cert_path.parent.mkdir(parents=True, exist_ok=True)
        fingerprint = generate_self_signed(config.cert_path, config.key_path)
        server = ManagerServer(config)
        server.start()
        return (
            server,
            create_user(server.manager, "admin")["key"],
            create_endpoint(server.manager),
            fingerprint,
        )

    server, admin_key, endpoint, fingerprint = mgr.submit(start_manager).result(30)

    def command(line: str) -> dict[str, Any]:
        with AdminClient(
            f"https://127.0.0.1:{server.admin_port}", admin_key, verify=pinned_ssl_context(config.cert_path)
        ) as admin:
            admin.send_command(endpoint["uuid"], line)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                result = admin.command(endpoint["uuid"])
                if result.get("completed"):
                    return result
                time.sleep(0.2)
        raise AssertionError(f"{line}: no result in 30 s")

    data = tmp_path / "agent"
    agent_toml = tmp_path / "agent.toml"
    agent_toml.write_text(
        f'data_dir = "{data}"\nstats_interval = 1\n[sensors]\nkernel = false\n[manager]\n'
        f'url = "https://10.231.1.2:{server.endpoint_port}"\nuuid = "{endpoint["uuid"]}"\n'
        f'key = "{endpoint["key"]}"\nfingerprint = "{fingerprint}"\ntimeout = 5\n'
    )
    deadman_file = data / "containment.heartbeat.deadman"
    log = tmp_path / "agent.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                lab.ep,
                sys.executable,
                "-m",
                "vigil",
                "-v",
                "agent",
                "run",
                "--config",
                str(agent_toml),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_for(lambda: "agent running" in log.read_text(), 60, "agent start")
        assert lab.connect(lab.ep, "10.231.2.2", 8080) == "ok"
        contained = mgr.submit(command, "contain").result(60)
        assert contained["error"] == "", contained
        assert f"10.231.1.2:{server.endpoint_port}" in contained["json"]["message"]
        assert is_contained(netns=lab.ep)
        assert lab.connect(lab.ep, "10.231.2.2", 8080).startswith("fail"), "the internet is cut off"
        assert lab.connect(lab.ep, "10.231.1.2", 8080).startswith("fail"), (
            "only the manager's port stays open"
        )
        released = mgr.submit(command, "uncontain").result(60)  # it reached the contained agent
        assert released["error"] == "" and released["json"]["message"] == "uncontained"
        assert not is_contained(netns=lab.ep)
        assert lab.connect(lab.ep, "10.231.2.2", 8080) == "ok"
        deadman = int(deadman_file.read_text())
        wait_for(lambda: not _running(deadman), 15, "the dead-man switch to exit after uncontain")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        uncontain(netns=lab.ep)  # whatever happened above
        if deadman_file.exists() and _running(pid := int(deadman_file.read_text())):
            os.kill(pid, signal.SIGKILL)  # the dead man our agent started, by its pid file
        mgr.submit(server.stop).result(30)
        mgr.shutdown()
