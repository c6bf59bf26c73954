"""File create/delete on a watched test directory, with fanotify (names the process) and inotify."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tests.agent.sensor_helpers import Collector, needs_root

from vigil.agent.sensor import Sensor
from vigil.agent.sources.files import FileSource


def _fanotify_fds() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[fanotify]":
                n += 1
        except OSError:
            pass
    return n


def _run(sensor: Sensor, collector: Collector, root: Path) -> subprocess.CompletedProcess[bytes]:
    script = (
        f"echo x > {root}/a.txt; mkdir {root}/sub; sleep 0.2; echo y > {root}/sub/b.bin; "
        f"rm {root}/a.txt {root}/sub/b.bin"
    )
    p = subprocess.run(["sh", "-c", script], check=True)
    collector.wait_for(
        lambda e: e["Event"]["EventData"].get("TargetFilename") == f"{root}/sub/b.bin", count=2
    )
    return p


@needs_root
def test_fanotify_reports_creates_and_deletes_with_the_process(
    audit_ready: None, tmp_path: Path, collector: Collector
) -> None:
    before = _fanotify_fds()
    sensor = Sensor(
        sources=["proc_connector", "audit", "files"], watch_paths=[str(tmp_path)], exclude_pids=set()
    )
    try:
        sensor.start(collector)
        assert sensor.status() == {"proc_connector": None, "audit": None, "files": None}
        assert sensor.sources["files"].mode == "fanotify"  # type: ignore[attr-defined]
        assert _fanotify_fds() == before + 1
        _run(sensor, collector, tmp_path)
    finally:
        sensor.stop()
    assert _fanotify_fds() == before, "the fanotify group (and its marks) is gone after stop"
    files = [e for e in collector.events if e["Event"]["System"]["EventID"] in (11, 23)]
    got = sorted((e["Event"]["System"]["EventID"], e["Event"]["EventData"]["TargetFilename"]) for e in files)
    assert got == [
        (11, f"{tmp_path}/a.txt"),
        (11, f"{tmp_path}/sub"),
        (11, f"{tmp_path}/sub/b.bin"),
        (23, f"{tmp_path}/a.txt"),
        (23, f"{tmp_path}/sub/b.bin"),
    ]
    by_key = {(e["Event"]["System"]["EventID"], e["Event"]["EventData"]["TargetFilename"]): e for e in files}
    first = by_key[(11, f"{tmp_path}/a.txt")]["Event"]["EventData"]
    assert first["Image"] == os.path.realpath("/bin/sh")  # the shell's redirection created a.txt
    assert first["Extension"] == ".txt" and first["Count"] == "1"
    assert by_key[(11, f"{tmp_path}/sub")]["Event"]["EventData"]["Image"] == os.path.realpath("/bin/mkdir")
    rm = by_key[(23, f"{tmp_path}/a.txt")]["Event"]["EventData"]
    assert rm["Image"] == os.path.realpath("/bin/rm")  # the last command: sh execs rm in place
    assert rm["ProcessId"] == by_key[(23, f"{tmp_path}/sub/b.bin")]["Event"]["EventData"]["ProcessId"]


@needs_root
def test_inotify_fallback_reports_paths_without_process(tmp_path: Path, collector: Collector) -> None:
    sensor = Sensor(
        sources=["files"],
        watch_paths=[str(tmp_path)],
        exclude_pids=set(),
        source_options={"files": {"mode": "inotify"}},
    )
    try:
        sensor.start(collector)
        _run(sensor, collector, tmp_path)
    finally:
        sensor.stop()
    got = [
        (e["Event"]["System"]["EventID"], e["Event"]["EventData"]["TargetFilename"]) for e in collector.events
    ]
    assert (11, f"{tmp_path}/sub/b.bin") in got and (23, f"{tmp_path}/a.txt") in got
    assert all(e["Event"]["EventData"]["ProcessId"] == "-" for e in collector.events)


def test_missing_watch_path_is_named(tmp_path: Path) -> None:
    src = FileSource([str(tmp_path / "nope")])
    assert src.requirements() == [f"watched path {tmp_path / 'nope'} is not a directory"]
    with pytest.raises(ValueError, match="files mode must be"):
        FileSource([str(tmp_path)], mode="poll")
