"""A manager killed with SIGKILL during ingest loses nothing it answered 200 for."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from vigil.client import AdminClient, pinned_ssl_context
from vigil.manager.testing import GZIP, make_event, ndjson, start_manager_process

pytestmark = pytest.mark.slow


def _vigil(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "vigil", "manager", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        children = {child for child, p in parents.items() if p == parent}
        found |= children
        todo.extend(children)
    return found


def _stop(proc: subprocess.Popen[str], sig: int) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, sig)
    proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()


def test_sigkill_during_ingest_loses_no_acknowledged_event(tmp_path: Path) -> None:
    data = tmp_path / "manager"
    init = _vigil("init", "--data", str(data))
    admin_key = init.split("admin key (shown once): ")[1].split()[0]
    enrolled = json.loads(_vigil("endpoint", "add", "--data", str(data)))
    ssl = pinned_ssl_context(data / "tls" / "cert.pem")
    proc, endpoint_port, admin_port = start_manager_process(data)
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[str] = []

    def agent(worker: int) -> None:
        headers = {
            "X-Endpoint-Uuid": enrolled["uuid"],
            "X-Api-Key": enrolled["key"],
            "X-Endpoint-Hostname": "h",
        }
        with httpx.Client(
            base_url=f"https://127.0.0.1:{endpoint_port}", verify=ssl, headers=headers
        ) as client:
            batch_no = 0
            while not stop.is_set():
                hashes = [f"{worker:04x}{batch_no:08x}{i:04x}".ljust(40, "0") for i in range(200)]
                events = [
                    make_event(
                        i, time="2026-05-01T00:00:00Z", hash_=h, signatures=("Sig",) if i % 50 == 0 else ()
                    )
                    for i, h in enumerate(hashes)
                ]
                try:
                    response = client.post("/logs", content=ndjson(events), headers=GZIP)
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    with lock:
                        acked.extend(hashes)
                else:
                    errors.append(response.text)
                batch_no += 1

    workers = [threading.Thread(target=agent, args=(n,)) for n in range(4)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 30
    while len(acked) < 4000 and time.monotonic() < deadline:
        time.sleep(0.05)
    helpers = _descendants(proc.pid)
    assert helpers, "the manager parses in a worker process"
    _stop(proc, signal.SIGKILL)
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    assert errors == []
    assert len(acked) >= 4000, "ingest made progress before the kill"

    conn = sqlite3.connect(data / "manager.db")
    try:
        stored = {row[0] for row in conn.execute("SELECT hash FROM events")}
        detections = conn.execute("SELECT COUNT(*) FROM detections").fetchone()[0]
    finally:
        conn.close()
    lost = [h for h in acked if h not in stored]
    assert lost == [], f"{len(lost)} acknowledged events lost"
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() for pid in helpers), "worker processes outlived the manager"

    # After a restart the report still counts every stored detection (reports survive restarts).
    proc, endpoint_port, admin_port = start_manager_process(data)
    try:
        with AdminClient(f"https://127.0.0.1:{admin_port}", admin_key, verify=ssl) as admin:
            report = admin.report(enrolled["uuid"])
            assert report is not None and report["alert-count"] == detections
    finally:
        _stop(proc, signal.SIGTERM)
