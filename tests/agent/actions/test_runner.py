"""ActionRunner: WHIDS-style gates, order and artifacts, on processes the tests start."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

from vigil.agent.actions.blacklist_store import Blacklist
from vigil.agent.actions.runner import ActionRunner

from .conftest import ProcessInfo, needs_root, unique_copy

EVENT = {
    "Event": {
        "System": {"Channel": "Linux-Sysmon/Operational", "EventID": 1},
        "EventData": {"Image": "/x"},
        "Detection": {"Signature": ["TestRule"], "Criticality": 10, "Actions": ["kill"]},
    }
}


def _info(pid: int, image: str = "", guid: str = "") -> ProcessInfo:
    guid = guid or f"{{{pid:08x}-0000-4000-8000-{pid:012x}}}"
    return ProcessInfo(pid=pid, ppid=1, guid=guid, image=image, command_line=image)


@needs_root
def test_rule_less_kill_kills_a_test_process(tmp_path: Path, orphans) -> None:
    pid = orphans.spawn(["sleep", "60"])
    events: list[dict] = []
    runner = ActionRunner(tmp_path / "dumps", on_event=events.append)
    results = runner.run(["kill"], {}, _info(pid, "/usr/bin/sleep"))
    assert [(r.action, r.ok) for r in results] == [("kill", True)]
    assert orphans.wait_exit(pid)
    assert len(events) == 1 and events[0]["Event"]["System"]["EventID"] == 103
    data = events[0]["Event"]["EventData"]
    assert data["Action"] == "kill" and data["Result"] == "success" and data["ProcessId"] == str(pid)
    assert data["Signature"] == "-" and data["Message"] == f"SIGKILL sent to pid {pid}"


@needs_root
def test_unknown_start_ticks_do_not_block_the_kill(tmp_path: Path, orphans) -> None:
    pid = orphans.spawn(["sleep", "60"])
    info = _info(pid)
    info.start_ticks = 0  # the tracker's "unknown"
    assert ActionRunner(tmp_path / "dumps").run(["kill"], EVENT, info)[0].ok
    assert orphans.wait_exit(pid)


def test_refuses_the_agent_and_its_children(tmp_path: Path) -> None:
    runner = ActionRunner(tmp_path / "dumps")
    me = runner.run(["kill", "memdump"], EVENT, _info(os.getpid()))
    assert [(r.action, r.ok) for r in me] == [("kill", False), ("memdump", False)]
    assert "agent itself" in me[0].message
    child = subprocess.Popen(["sleep", "30"])
    try:
        res = runner.run(["kill"], EVENT, _info(child.pid))
        assert not res[0].ok and "child of the agent" in res[0].message
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_untracked_and_unknown(tmp_path: Path) -> None:
    runner = ActionRunner(tmp_path / "dumps")
    assert runner.run(["kill"], EVENT, None)[0].message == "untracked process (dump-untracked is off)"
    res = runner.run(["regdump", "kill"], EVENT, None)
    assert res[0].action == "regdump" and res[0].message == "unknown action 'regdump'"
    assert runner.run([], EVENT, None) == []


@needs_root
def test_kill_memdump_filedump_in_order_with_artifacts(tmp_path: Path, orphans) -> None:
    binary = unique_copy("/bin/sleep", tmp_path / "implant")
    pid = orphans.spawn([str(binary), "60"])
    deadline = time.monotonic() + 5
    while os.readlink(f"/proc/{pid}/exe") != str(binary) and time.monotonic() < deadline:
        time.sleep(0.01)
    runner = ActionRunner(tmp_path / "dumps")
    results = runner.run(["kill", "memdump", "filedump"], EVENT, _info(pid, str(binary)))
    by = {r.action: r for r in results}
    assert [r.action for r in results] == ["kill", "memdump", "filedump", "event"]
    assert all(r.ok for r in results), [r.message for r in results]
    assert orphans.wait_exit(pid)
    core = tmp_path / "core"
    core.write_bytes(gzip.decompress(Path(by["memdump"].artifacts[0].path).read_bytes()))
    out = subprocess.run(["readelf", "-h", "-l", str(core)], capture_output=True, text=True, check=True)
    assert "CORE (Core file)" in out.stdout
    copies = [a for a in by["filedump"].artifacts if a.kind == "file"]
    assert copies[0].sha256 == hashlib.sha256(binary.read_bytes()).hexdigest()
    stored = json.loads(gzip.decompress(Path(by["event"].artifacts[0].path).read_bytes()))
    assert stored == EVENT
    assert Path(by["memdump"].artifacts[0].path).parent.parent.name == _info(pid).guid


@needs_root
def test_per_process_cap(tmp_path: Path, orphans) -> None:
    pid = orphans.spawn(["sleep", "60"])
    runner = ActionRunner(tmp_path / "dumps", max_dumps=2)
    info = _info(pid, "/usr/bin/sleep")
    for _ in range(2):
        assert runner.run(["filedump"], EVENT, info)[0].ok
    third = runner.run(["filedump"], EVENT, info)
    assert not third[0].ok and "action cap reached" in third[0].message
    assert runner.counters["capped"] == 1


@needs_root
def test_memdump_once_per_process(tmp_path: Path, orphans) -> None:
    pid = orphans.spawn(["sleep", "60"])
    runner = ActionRunner(tmp_path / "dumps")
    info = _info(pid, "/usr/bin/sleep")
    assert runner.run(["memdump"], EVENT, info)[0].ok
    again = runner.run(["memdump"], EVENT, info)[0]
    assert not again.ok and "already dumped" in again.message
    assert orphans.alive(pid)


@needs_root
def test_blacklist_action_persists_the_image_hash(tmp_path: Path, orphans) -> None:
    binary = unique_copy("/bin/sleep", tmp_path / "bad")
    pid = orphans.spawn([str(binary), "60"])
    time.sleep(0.05)
    bl = Blacklist(tmp_path / "blacklist.json")
    runner = ActionRunner(tmp_path / "dumps", blacklist=bl)
    res = runner.run(["blacklist"], EVENT, _info(pid, str(binary)))
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    assert res[0].ok and digest in Blacklist(tmp_path / "blacklist.json")
    assert "TestRule" in bl.reason(digest)
    assert orphans.alive(pid), "blacklist alone does not kill"


@needs_root
def test_report_needs_enabling_and_brief_wins(tmp_path: Path, orphans) -> None:
    pid = orphans.spawn(["sleep", "60"])
    off = ActionRunner(tmp_path / "d1").run(["report"], EVENT, _info(pid))
    assert not off[0].ok and "disabled" in off[0].message
    runner = ActionRunner(
        tmp_path / "d2", enable_reporting=True, report_context=lambda: {"dns": [{"QueryName": "x"}]}
    )
    res = runner.run(["report", "brief"], EVENT, _info(pid))
    assert [r.action for r in res] == ["brief", "event"]
    report = json.loads(gzip.decompress(Path(res[0].artifacts[0].path).read_bytes()))
    assert report["commands"] == [] and report["dns"] == [{"QueryName": "x"}]
    assert str(pid) in {str(p["pid"]) for p in report["processes"].values()}


@needs_root
def test_submit_does_not_block(tmp_path: Path, orphans) -> None:
    pids = [orphans.spawn(["sleep", "60"]) for _ in range(3)]
    runner = ActionRunner(tmp_path / "dumps")
    t0 = time.perf_counter()
    assert all(runner.submit(["memdump", "kill"], EVENT, _info(p)) for p in pids)
    assert time.perf_counter() - t0 < 0.5
    runner.shutdown(wait=True)
    assert all(orphans.wait_exit(p) for p in pids)


def test_full_queue_drops(tmp_path: Path) -> None:
    runner = ActionRunner(tmp_path / "dumps", max_queue=1, workers=1)
    gate = __import__("threading").Event()
    runner.run = lambda *a, **k: gate.wait(5)  # type: ignore[method-assign]
    assert runner.submit(["kill"], EVENT, None) is True
    assert runner.submit(["kill"], EVENT, None) is False
    assert runner.counters["dropped"] == 1
    gate.set()
    runner.shutdown()
