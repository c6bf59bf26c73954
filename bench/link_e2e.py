"""Benchmark: agent-to-manager throughput and exec-to-searchable-detection latency.

    python bench/link_e2e.py [--events 20000] [--execs 50]        (latency part: root only)

A real TLS manager on loopback (:class:`vigil.manager.testing.LiveManager`, pinned certificate) and
real ``vigil agent run`` subprocesses:

* throughput: an agent with ``log_all`` replays ``--events`` events (kernel sensors off); events/s
  is the count divided by the time from the first to the last event searchable on the manager
  (spool + forwarder + ingest, end to end, each event durably spooled first);
* latency (root): an agent with kernel sensors and one rule on a private binary; each of ``--execs``
  execs is timed from just before its spawn until its detection is returned by the admin search
  (``GET /endpoints/{uuid}/detections``, polled every 10 ms).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vigil.manager.testing import LiveManager


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def agent_config(tmp: Path, live: LiveManager, extra: str) -> Path:
    path = tmp / "agent.toml"
    path.write_text(
        f'data_dir = "{tmp / "agent"}"\nstats_interval = 5\n'
        + extra
        + f'[manager]\nurl = "{live.endpoint_url}"\nuuid = "{live.endpoint_uuid}"\n'
        f'key = "{live.endpoint_key}"\nfingerprint = "{live.fingerprint}"\n'
    )
    path.chmod(0o600)
    return path


def start_agent(tmp: Path, config: Path) -> subprocess.Popen[bytes]:
    log = (tmp / "agent.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vigil", "agent", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = time.monotonic() + 60
    while "agent running" not in (tmp / "agent.log").read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"agent did not start:\n{(tmp / 'agent.log').read_text()[-2000:]}")
        time.sleep(0.05)
    return proc


def stop_agent(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def count(live: LiveManager, kind: str) -> int:
    with live.admin() as admin:
        total = 0
        while True:
            page = admin._search(live.endpoint_uuid, kind, last="24h", limit=10000, skip=total)
            total += len(page)
            if len(page) < 10000:
                return total


def throughput(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vigil-bench-link-") as d:
        tmp = Path(d)
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        replay = tmp / "replay.jsonl"
        with replay.open("w") as f:
            for i in range(n):
                f.write(json.dumps({"Event": {
                    "System": {"Channel": "Linux-Sysmon/Operational", "EventID": 1, "Computer": "bench",
                               "TimeCreated": {"SystemTime": f"{now}.{i:09d}Z"}},
                    "EventData": {"Image": f"/usr/bin/tool{i}", "CommandLine": f"tool --n {i}",
                                  "ProcessGuid": "{00000000-0000-0000-0000-000000000000}", "N": str(i)},
                }}) + "\n")  # fmt: skip
        with LiveManager(tmp / "manager") as live:
            config = agent_config(
                tmp, live, f'log_all = true\n[sensors]\nkernel = false\nreplay = "{replay}"\n'
            )
            started = time.monotonic()
            proc = start_agent(tmp, config)
            try:
                first = None
                while True:
                    c = count(live, "logs")
                    if c and first is None:
                        first = time.monotonic()
                    if c >= n:
                        break
                    if time.monotonic() - started > 600:
                        raise SystemExit(f"only {c} of {n} events arrived")
                    time.sleep(0.05)
                last = time.monotonic()
            finally:
                stop_agent(proc)
            assert first is not None
            return {
                "events": n,
                "seconds": round(last - first, 2),
                "events_per_s": round(n / max(last - first, 1e-9)),
            }


def latency(execs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vigil-bench-link-") as d:
        tmp = Path(d)
        binary = tmp / f"vigil-bench-{os.getpid()}"
        binary.write_bytes(Path("/bin/true").read_bytes() + os.urandom(32))
        binary.chmod(0o755)
        rules = tmp / "agent" / "rules"
        rules.mkdir(parents=True)
        rule = {"Name": "BenchExec", "Meta": {"Events": {"Linux-Sysmon/Operational": [1]}, "Criticality": 6,
                "Schema": "2.0.0"}, "Matches": [f"$m: Image = '{binary}'"], "Condition": "$m"}  # fmt: skip
        (rules / "bench.gen").write_text(json.dumps(rule))
        with LiveManager(tmp / "manager") as live:
            config = agent_config(
                tmp,
                live,
                '[actions]\nmedium = []\n[sensors]\nsources = ["proc_connector", "audit", "fanotify_exec"]\n',
            )
            proc = start_agent(tmp, config)
            samples: list[float] = []
            try:
                for i in range(execs):
                    before = count(live, "detections")
                    t0 = time.monotonic()
                    subprocess.run([str(binary), str(i)], check=True)
                    while count(live, "detections") <= before:
                        if time.monotonic() - t0 > 30:
                            raise SystemExit(f"exec {i}: no detection after 30 s")
                        time.sleep(0.01)
                    samples.append((time.monotonic() - t0) * 1000)
            finally:
                stop_agent(proc)
            return {
                "execs": execs,
                "p50_ms": round(percentile(samples, 0.5), 1),
                "p99_ms": round(percentile(samples, 0.99), 1),
                "max_ms": round(max(samples), 1),
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--execs", type=int, default=50)
    args = parser.parse_args()
    result: dict[str, Any] = {"throughput": throughput(args.events)}
    if os.geteuid() == 0:
        result["exec_to_searchable_detection"] = latency(args.execs)
    else:
        result["exec_to_searchable_detection"] = "skipped: needs root (kernel sensors)"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
