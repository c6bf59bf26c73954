"""Canary files: created per config, an open by a test process names it, removed on uninstall."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from vigil.agent.actions.errors import InvalidInput
from vigil.agent.canaries import CanaryGroup, CanaryManager

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="fanotify permission marks need root")

OPENER = """
import sys, time
with open(sys.argv[1], "rb") as f:
    f.read(16)
print("opened", flush=True)
time.sleep(float(sys.argv[2]))
"""


class Sink:
    def __init__(self) -> None:
        self.events: list[dict] = []
        self.cond = threading.Condition()

    def __call__(self, event: dict) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait(self, n: int = 1, timeout: float = 5.0) -> list[dict]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.events) >= n, timeout)
        return [e["Event"]["EventData"] for e in self.events]


def _opener(path: Path, linger: float = 2.0) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", OPENER, str(path), str(linger)], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "opened"
    return p


def _reap(p: subprocess.Popen[str]) -> None:
    p.kill()
    p.wait()
    if p.stdout is not None:
        p.stdout.close()


@pytest.fixture
def manager(tmp_path: Path):
    sink = Sink()
    group = CanaryGroup(directories=[str(tmp_path / "decoys" / "secrets")], files=["passwords.txt", "id_rsa"])
    # the agent never alerts on itself or its children, and the test's openers are pytest's
    # children: so a stand-in process plays the agent here
    stand_in = subprocess.Popen(["sleep", "60"])
    mgr = CanaryManager(
        [group], state_path=tmp_path / "state" / "canaries.json", on_event=sink, agent_pid=stand_in.pid
    )
    try:
        yield mgr, sink
    finally:
        mgr.uninstall()
        stand_in.kill()
        stand_in.wait()


def test_install_creates_files_and_uninstall_removes_only_them(tmp_path: Path) -> None:
    existing = tmp_path / "home"
    existing.mkdir()
    (existing / "mine.txt").write_text("keep me")
    groups = [
        CanaryGroup(directories=[str(existing), str(tmp_path / "new" / "dir")], files=["a.pdf", "b.docx"])
    ]
    mgr = CanaryManager(groups, state_path=tmp_path / "canaries.json")
    files = mgr.install()
    assert sorted(files) == sorted(
        [
            str(existing / "a.pdf"),
            str(existing / "b.docx"),
            str(tmp_path / "new/dir/a.pdf"),
            str(tmp_path / "new/dir/b.docx"),
        ]
    )
    assert all(1024 <= Path(f).stat().st_size <= 64 * 1024 for f in files)
    # a restarted agent knows what it created
    again = CanaryManager(groups, state_path=tmp_path / "canaries.json")
    again.uninstall()
    assert not any(Path(f).exists() for f in files)
    assert not (tmp_path / "new" / "dir").exists()
    assert (existing / "mine.txt").read_text() == "keep me" and existing.is_dir()


@needs_root
def test_fanotify_alert_names_the_process(manager, tmp_path: Path) -> None:
    mgr, sink = manager
    mgr.install()
    assert mgr.start("fanotify") == "fanotify"
    target = tmp_path / "decoys" / "secrets" / "passwords.txt"
    p = _opener(target)
    try:
        events = sink.wait(1)
        assert len(events) == 1
        ev = events[0]
        assert ev["TargetFilename"] == str(target)
        assert ev["ProcessId"] == str(p.pid)
        assert ev["Image"] == os.path.realpath(sys.executable)
        assert str(target) in ev["CommandLine"]
        assert ev["Mechanism"] == "fanotify" and "FAN_OPEN_PERM" in ev["AccessType"]
        assert sink.events[0]["Event"]["System"]["EventID"] == 100
        assert sink.events[0]["Event"]["System"]["Channel"] == "Vigil/Operational"
    finally:
        _reap(p)


@needs_root
def test_short_lived_opener_is_still_named(manager, tmp_path: Path) -> None:
    mgr, sink = manager
    mgr.install()
    mgr.start("fanotify")
    target = tmp_path / "decoys" / "secrets" / "id_rsa"
    proc = subprocess.run(["cat", str(target)], capture_output=True, check=True)
    assert proc.returncode == 0
    ev = sink.wait(1)[0]
    assert ev["Image"] == os.path.realpath("/usr/bin/cat") or ev["Image"].endswith("/cat")
    assert ev["TargetFilename"] == str(target)


@needs_root
def test_listing_a_created_decoy_directory_alerts(manager, tmp_path: Path) -> None:
    mgr, sink = manager
    mgr.install()
    mgr.start("fanotify")
    os.listdir(tmp_path / "decoys" / "secrets")  # the test process is not the agent here
    ev = sink.wait(1)[0]
    assert ev["TargetFilename"] == str(tmp_path / "decoys" / "secrets")
    assert ev["ProcessId"] == str(os.getpid())


@needs_root
def test_agent_and_whitelisted_images_are_ignored(tmp_path: Path) -> None:
    sink = Sink()
    group = CanaryGroup(directories=[str(tmp_path / "d")], files=["x.txt"])
    mgr = CanaryManager(
        [group], state_path=tmp_path / "s.json", on_event=sink, whitelist=[os.path.realpath("/usr/bin/cat")]
    )
    try:
        mgr.install()
        mgr.start("fanotify")
        (tmp_path / "d" / "x.txt").read_bytes()  # the agent itself (this pid)
        subprocess.run(
            ["cat", str(tmp_path / "d" / "x.txt")], capture_output=True, check=True
        )  # its child, and whitelisted
        time.sleep(0.3)
        assert sink.events == []
        assert mgr.counters["ignored"] >= 2
    finally:
        mgr.uninstall()


def test_inotify_fallback_says_it_cannot_name_the_process(manager, tmp_path: Path) -> None:
    mgr, sink = manager
    mgr.install()
    assert mgr.start("inotify") == "inotify"
    target = tmp_path / "decoys" / "secrets" / "passwords.txt"
    p = _opener(target, 0.1)
    try:
        ev = sink.wait(1)[0]
        assert ev["TargetFilename"] == str(target)
        assert ev["ProcessId"] == "-1" and ev["Image"] == "?"
        assert "cannot name the process" in ev["Note"]
    finally:
        _reap(p)


def test_bad_config_is_named() -> None:
    with pytest.raises(InvalidInput, match=r"'\.\./x' must be a plain file name"):
        CanaryGroup(directories=["/tmp"], files=["../x"])
    with pytest.raises(InvalidInput, match="not auto, fanotify or inotify"):
        CanaryManager([], state_path="/nonexistent/s.json").start("ebpf")


def test_corrupt_state_file_is_named(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    state.write_text("{oops")
    with pytest.raises(InvalidInput, match=str(state)):
        CanaryManager([], state_path=state)
