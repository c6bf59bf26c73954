"""filedump: image, parent image, command-line files, deleted binaries; one copy per sha256."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import time
from pathlib import Path

import pytest

from vigil.agent.actions.artifacts import ArtifactStore
from vigil.agent.actions.filedump import FileDumper, FileFound, collect, command_line_paths

from .conftest import ProcessInfo, needs_root, unique_copy

EVENT = {"Event": {"System": {"EventID": 1}, "EventData": {}}}


def _copies(artifacts) -> dict[str, bytes]:
    return {
        a.meta["original_path"]: gzip.decompress(Path(a.path).read_bytes())
        for a in artifacts
        if a.kind == "file"
    }


@needs_root
def test_recovers_a_binary_deleted_after_start(tmp_path: Path) -> None:
    binary = unique_copy("/bin/sleep", tmp_path / "dropper")
    original = binary.read_bytes()
    proc = subprocess.Popen([str(binary), "60"])
    try:
        time.sleep(0.05)
        binary.unlink()
        info = ProcessInfo(
            pid=proc.pid, ppid=1, image=str(binary), command_line=f"{binary} 60", cwd=str(tmp_path)
        )
        store = ArtifactStore(tmp_path / "dumps")
        arts = FileDumper(store).dump(info, EVENT, store.event_dir("g", EVENT))
        copies = _copies(arts)
        assert copies[f"{binary} (deleted)"] == original
        file_art = next(a for a in arts if a.kind == "file")
        assert file_art.sha256 == hashlib.sha256(original).hexdigest()
        sums = [
            gzip.decompress(Path(a.path).read_bytes()).decode().strip() for a in arts if a.kind == "sha256"
        ]
        assert hashlib.sha256(original).hexdigest() in sums
    finally:
        proc.kill()
        proc.wait()


@needs_root
def test_one_copy_per_sha256_and_command_line_files(tmp_path: Path) -> None:
    data = tmp_path / "payload.cfg"
    data.write_bytes(b"payload-bytes")
    binary = unique_copy("/bin/sleep", tmp_path / "tool")
    proc = subprocess.Popen([str(binary), "60"], cwd=tmp_path)
    try:
        info = ProcessInfo(
            pid=proc.pid, ppid=1, image=str(binary), command_line="tool payload.cfg 60", cwd=str(tmp_path)
        )
        store = ArtifactStore(tmp_path / "dumps")
        dumper = FileDumper(store)
        first = dumper.dump(info, EVENT, store.event_dir("g", EVENT))
        assert _copies(first)[str(data)] == b"payload-bytes"
        assert _copies(first)[str(binary)] == binary.read_bytes()
        other_event = {"Event": {"System": {"EventID": 3}, "EventData": {}}}
        second = dumper.dump(info, other_event, store.event_dir("g", other_event))
        assert _copies(second) == {}, "already copied files are not copied again"
        assert {a.kind for a in second} == {"sha256"}
    finally:
        proc.kill()
        proc.wait()


def test_command_line_paths() -> None:
    assert command_line_paths("/bin/cp '/tmp/a b' --out=/tmp/c rel/x", "/home/u") == [
        "/bin/cp",
        "/tmp/a b",
        "/tmp/c",
        "/home/u/rel/x",
    ]
    assert command_line_paths("echo 'unterminated", "/") == []


def test_event_fields_are_candidates() -> None:
    event = {"Event": {"EventData": {"TargetFilename": "/tmp/dropped", "Image": "relative-ignored"}}}
    assert [(f.reason, f.open_path) for f in collect(None, event)] == [
        ("event:TargetFilename", "/tmp/dropped")
    ]


def test_missing_and_special_files_are_skipped(tmp_path: Path) -> None:
    event = {
        "Event": {
            "EventData": {
                "TargetFilename": str(tmp_path / "gone"),
                "CommandLine": "cat /dev/zero /proc/1/environ",
            }
        }
    }
    store = ArtifactStore(tmp_path / "dumps")
    assert FileDumper(store).dump(None, event, store.event_dir("g", event)) == []


def _found_then_exited(
    binary: Path, tmp_path: Path, *, replace: bytes | None = None
) -> tuple[ProcessInfo, list[FileFound]]:
    """What ``collect`` finds for ``binary`` running (deleted and its path reused first when
    ``replace`` is given), and the process, which has exited when this returns."""
    proc = subprocess.Popen([str(binary), "60"])
    try:
        time.sleep(0.05)
        if replace is not None:
            binary.unlink()
            binary.write_bytes(replace)
        info = ProcessInfo(pid=proc.pid, ppid=1, image=str(binary), command_line="", cwd=str(tmp_path))
        return info, collect(info, EVENT)
    finally:
        proc.kill()
        proc.wait()


def _dump_found(
    tmp_path: Path, info: ProcessInfo, found: list[FileFound], monkeypatch: pytest.MonkeyPatch
) -> dict[str, bytes]:
    from vigil.agent.actions import filedump

    monkeypatch.setattr(filedump, "collect", lambda process, event: found)  # found while it ran
    store = ArtifactStore(tmp_path / "dumps")
    return _copies(FileDumper(store).dump(info, EVENT, store.event_dir("g", EVENT)))


@needs_root
def test_a_process_that_exits_before_the_copy_still_gets_its_binary_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image is found through /proc/PID/exe while the process runs; a short-lived process is
    gone by the time it is opened, and its binary is then copied from its path."""
    binary = unique_copy("/bin/sleep", tmp_path / "short-lived")
    info, found = _found_then_exited(binary, tmp_path)
    assert found[0].open_path == f"/proc/{info.pid}/exe"
    assert _dump_found(tmp_path, info, found, monkeypatch) == {str(binary): binary.read_bytes()}


@needs_root
def test_a_deleted_binary_of_an_exited_process_is_not_replaced_by_what_now_has_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = unique_copy("/bin/sleep", tmp_path / "dropper")
    info, found = _found_then_exited(binary, tmp_path, replace=b"another file under the old name")
    assert found[0].display_path == f"{binary} (deleted)"
    assert _dump_found(tmp_path, info, found, monkeypatch) == {}
