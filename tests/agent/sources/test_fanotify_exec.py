"""Image hashes come from the file that was executed, even when the path is replaced right after."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from tests.agent.sensor_helpers import Collector, needs_root

from vigil.agent.sensor import Sensor
from vigil.agent.sources.fanotify_exec import FanotifyExecSource, local_filesystems


def _unique_true(path: Path, tag: bytes) -> str:
    shutil.copy("/bin/true", path)
    with open(path, "ab") as f:
        f.write(tag)  # a unique sha256: never the hash of a real system binary
    return hashlib.sha256(path.read_bytes()).hexdigest().upper()


def test_local_filesystems_include_root() -> None:
    assert "/" in local_filesystems()


@needs_root
def test_hash_is_of_the_executed_file_not_its_replacement(
    audit_ready: None, tmp_path: Path, collector: Collector
) -> None:
    a, b = tmp_path / "tool", tmp_path / "tool.new"
    sha_a = _unique_true(a, b"VIGIL-TEST-A")
    sha_b = _unique_true(b, b"VIGIL-TEST-B")
    sensor = Sensor(
        sources=["proc_connector", "audit", "fanotify_exec"],
        exclude_pids=set(),
        source_options={"fanotify_exec": {"mounts": ["/"]}},
    )
    try:
        sensor.start(collector)
        assert sensor.status()["fanotify_exec"] is None
        # run A, then at once put B in its place (a new inode under the same name)
        subprocess.run(["sh", "-c", f"{a} fan-tag; mv {b} {a}"], check=True)
        found = collector.wait_for(
            lambda e: (
                e["Event"]["System"]["EventID"] == 1
                and e["Event"]["EventData"]["CommandLine"] == f"{a} fan-tag"
            )
        )
    finally:
        sensor.stop()
    assert len(found) == 1, [
        (
            e["Event"]["EventData"]["ProcessId"],
            e["Event"]["EventData"]["Hashes"][-20:],
            e["Event"]["EventData"]["ParentProcessId"],
        )
        for e in found
    ]
    assert f"SHA256={sha_a}" in found[0]["Event"]["EventData"]["Hashes"]
    assert sha_b not in found[0]["Event"]["EventData"]["Hashes"]
    assert sensor.stats()["hash_origins"]["fanotify"] >= 1


@needs_root
def test_marks_are_removed_on_stop() -> None:
    src = FanotifyExecSource(mounts=["/"])
    src.start(lambda r: None)
    try:
        assert src.marked == ["/"]
        fd = src._fd
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[fanotify]"
        with open(f"/proc/self/fdinfo/{fd}") as f:
            marks = [line for line in f if line.startswith("fanotify sdev:")]
        assert len(marks) == 1 and "mask:1000" in marks[0]  # FAN_OPEN_EXEC on the root filesystem
    finally:
        src.stop()
    assert src._fd == -1 and src.marked == []
    try:
        still = os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[fanotify]"
    except FileNotFoundError:
        still = False
    assert not still, "the fanotify group was closed, which removes its marks"
