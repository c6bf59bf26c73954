"""ExecBlocker: a blacklisted test binary is refused at exec (EPERM), renamed copies too.

The blocker runs in a child process inside a private mount namespace and marks only a tmpfs that
exists in that namespace; the child runs under ``timeout -s KILL`` so a failure cannot hang the
machine (when the responder dies the kernel allows every pending exec).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from vigil.agent.actions.blacklist import ExecBlocker
from vigil.agent.actions.blacklist_store import Blacklist
from vigil.agent.actions.errors import InvalidInput

from .conftest import needs_root, unique_copy

CHILD = Path(__file__).with_name("_blocker_child.py")


@needs_root
@pytest.mark.parametrize("mode", ["process", "thread"])
def test_blacklisted_binary_and_renamed_copy_are_refused_at_exec(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "mnt"
    root.mkdir()
    tag = uuid.uuid4().hex
    proc = subprocess.run(
        [
            "timeout",
            "-s",
            "KILL",
            "60",
            "unshare",
            "--mount",
            sys.executable,
            str(CHILD),
            str(root),
            tag,
            mode,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[3],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3] / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["marked"] == [str(root)]
    assert out["before_block_rc"] == 0
    assert out["evil_rc"] == 126
    assert out["renamed_rc"] == 126
    assert out["plain_rc"] == 0
    assert out["system_true_rc"] == 0
    assert out["python_error"] == 1  # EPERM
    assert out["after_stop_rc"] == 0
    assert out["persisted"] is True
    assert out["script_exec_rc"] == 126, "an executed script is opened for exec: refused"
    assert out["script_read_rc"] == 0, "`sh script` only reads it: not an exec (documented gap)"
    assert out["unblocked_rc"] == 0 and out["reblocked_rc"] == 126, "marks follow the blacklist"
    assert out["counters"]["denied"] == 5
    denied = [e["Event"]["EventData"] for e in out["events"] if e["Event"]["EventData"]["Reason"] == "test"]
    assert {d["TargetFilename"] for d in denied} == {f"{root}/evil-true", f"{root}/innocent-name"}
    assert all(d["Hashes"] == f"SHA256={out['sha256'].upper()}" for d in denied)
    assert all(d["Action"] == "denied" and d["Mechanism"] == "fanotify" for d in denied)
    assert out["events"][0]["Event"]["System"]["Channel"] == "Vigil/Operational"
    assert out["events"][0]["Event"]["System"]["EventID"] == 101
    assert out["restarted_rc"] == 126, "the persisted blacklist is enforced after a restart"
    if mode == "process":
        assert out["after_crash_rc"] == 0, "a dead responder blocks nothing"
        assert out["after_restart_rc"] == 126 and out["restarts"] == 1, "and it is restarted"
    # the tmpfs lived only in the child's namespace
    assert list(root.iterdir()) == []


@needs_root
def test_kill_at_exec_kills_a_blacklisted_process(tmp_path: Path, orphans) -> None:
    evil = unique_copy("/bin/sleep", tmp_path / "evil-sleep")
    other = unique_copy("/bin/sleep", tmp_path / "other-sleep")
    events: list[dict] = []
    blacklist = Blacklist(tmp_path / "blacklist.json")
    blacklist.add(hashlib.sha256(evil.read_bytes()).hexdigest(), "test")
    blocker = ExecBlocker(blacklist, mounts=[], on_event=events.append)
    bad = orphans.spawn([str(evil), "60"])
    good = orphans.spawn([str(other), "60"])
    _wait_exec(bad, str(evil))
    _wait_exec(good, str(other))
    assert blocker.check_exec(bad) is True
    assert orphans.wait_exit(bad)
    assert blocker.check_exec(good) is False
    assert blocker.check_exec(good, sha256="0" * 64) is False, "a known clean hash skips the read"
    assert orphans.alive(good)
    assert events[0]["Event"]["EventData"]["Mechanism"] == "kill-at-exec"
    assert events[0]["Event"]["EventData"]["TargetFilename"] == str(evil)


@needs_root
def test_kill_at_exec_covers_memfd_binaries(tmp_path: Path, orphans) -> None:
    evil = unique_copy("/bin/sleep", tmp_path / "evil-sleep")
    blacklist = Blacklist(None)
    blacklist.add(hashlib.sha256(evil.read_bytes()).hexdigest())
    blocker = ExecBlocker(blacklist, mounts=[])
    code = (
        "import os,sys; fd=os.memfd_create('fileless'); os.write(fd, open(sys.argv[1],'rb').read()); "
        "os.execv(f'/proc/self/fd/{fd}', ['fileless', '60'])"
    )
    pid = orphans.spawn([sys.executable, "-c", code, str(evil)])
    _wait_exec(pid, "/memfd:fileless")
    assert blocker.check_exec(pid) is True
    assert orphans.wait_exit(pid)


def test_check_exec_is_false_for_missing_pid(tmp_path: Path) -> None:
    blacklist = Blacklist(None)
    blacklist.add("a" * 64)
    assert ExecBlocker(blacklist, mounts=[]).check_exec(2**22 + 4321) is False


def test_blacklist_persists_and_validates(tmp_path: Path) -> None:
    path = tmp_path / "bl.json"
    bl = Blacklist(path)
    bl.add("AB" * 32, "why")
    assert "ab" * 32 in Blacklist(path)
    assert Blacklist(path).reason("ab" * 32) == "why"
    with pytest.raises(InvalidInput, match="not a sha256"):
        bl.add("not-a-hash")
    assert bl.remove("ab" * 32) is True
    assert "ab" * 32 not in Blacklist(path)


def test_corrupt_blacklist_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bl.json"
    path.write_text("{not json")
    with pytest.raises(InvalidInput, match=str(path)):
        Blacklist(path)


def test_bad_entries_are_skipped_good_ones_kept(tmp_path: Path, caplog) -> None:
    path = tmp_path / "bl.json"
    path.write_text(json.dumps({"version": 1, "sha256": {"zz": {}, "c" * 64: {"reason": "r"}}}))
    bl = Blacklist(path)
    assert len(bl) == 1 and "c" * 64 in bl
    assert "zz" in caplog.text


def _wait_exec(pid: int, image: str, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{pid}/exe").startswith(image):
                return
        except OSError:
            pass
        time.sleep(0.005)
    raise AssertionError(f"pid {pid} never exec'd {image}")


@needs_root
def test_filesystem_marks_on_root_and_dev_shm(tmp_path: Path) -> None:
    """Whole-filesystem marks for about a second, in a child killed after 30 s at most."""
    child = Path(__file__).with_name("_blocker_allfs_child.py")
    proc = subprocess.run(
        ["timeout", "-s", "KILL", "30", sys.executable, str(child), str(tmp_path), uuid.uuid4().hex],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3] / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["marked"] == ["/", "/dev/shm"]
    assert out["default"][:2] == ["/", "/dev/shm"], "the default list holds every local filesystem"
    assert out["root_rc"] == 126 and out["shm_rc"] == 126
    assert out["true_rc"] == 0
    assert out["counters"]["denied"] == 2 and out["counters"]["errors"] == 0


MOUNTINFO = r"""22 27 0:21 / /proc rw,relatime - proc proc rw
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683784k
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
30 25 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw
31 27 254:0 /srv /mnt/bind\040dir rw - ext4 /dev/vda rw
40 27 0:40 / /run/user/0 rw - tmpfs tmpfs rw
41 27 0:41 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
"""


def test_local_filesystems_one_per_superblock(tmp_path: Path) -> None:
    from vigil.agent.actions.mounts import local_filesystems, parse_mountinfo

    f = tmp_path / "mountinfo"
    f.write_text(MOUNTINFO)
    assert [(m.mount_point, m.fstype) for m in local_filesystems(str(f))] == [
        ("/", "ext4"),
        ("/dev/shm", "tmpfs"),
        ("/run/user/0", "tmpfs"),
    ]
    assert parse_mountinfo(MOUNTINFO)[4].mount_point == "/mnt/bind dir"


def test_malformed_mountinfo_names_the_line(tmp_path: Path) -> None:
    from vigil.agent.actions.mounts import local_filesystems

    f = tmp_path / "mountinfo"
    f.write_text("22 27 0:21 / /proc rw - proc proc rw\ngarbage\n")
    with pytest.raises(InvalidInput, match=rf"{f}:2: malformed mountinfo line"):
        local_filesystems(str(f))
