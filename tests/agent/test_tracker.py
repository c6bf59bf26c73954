"""The process tracker on real processes we start: seeding, fork/exec/exit, ancestry, hashes."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from vigil.agent.guid import process_guid, start_ticks_of
from vigil.agent.hashing import HashCache
from vigil.agent.tracker import ProcessTracker

PY = os.path.realpath(sys.executable)


def test_seed_knows_this_process_and_its_ancestry() -> None:
    t = ProcessTracker(hash_images=False)
    assert t.seed() > 1
    me = t.get(os.getpid())
    assert me is not None
    assert me.image == PY
    assert me.ppid == os.getppid()
    assert me.guid == process_guid(os.getpid(), start_ticks_of(os.getpid()) or 0)
    chain = t.ancestry(os.getpid())
    assert chain[0].pid == os.getppid()
    assert chain[-1].ppid == 0  # up to the root
    assert t.ancestors_field(me).split("|")[-1] == chain[0].image
    assert t.get_by_guid(me.guid) is me
    assert me in t.snapshot()


def test_exec_record_fills_fields_and_exit_keeps_entry_for_grace(tmp_path: Path) -> None:
    t = ProcessTracker(grace_s=10)
    t.seed()
    child = subprocess.Popen(["sleep", "5"], cwd=tmp_path)
    try:
        info = t.on_fork(child.pid, os.getpid())
        assert info.image == PY  # before exec the child runs the parent's image
        rec = {
            "ppid": os.getpid(),
            "exe": "/usr/bin/sleep",
            "argv": ["sleep", "5"],
            "cwd": str(tmp_path),
            "uid": 0,
            "auid": -1,
        }
        info = t.on_exec(child.pid, rec)
        assert (info.image, info.command_line, info.cwd, info.user) == (
            "/usr/bin/sleep",
            "sleep 5",
            str(tmp_path),
            "root",
        )
        assert info.sha256 == hashlib.sha256(Path("/usr/bin/sleep").read_bytes()).hexdigest()
        assert t.parent_guid(info) == t.get(os.getpid()).guid  # type: ignore[union-attr]
        assert t.ancestors_field(info).endswith("|" + PY)
    finally:
        child.kill()
        child.wait()
    gone = t.on_exit(child.pid, 9)
    assert gone is info and gone.terminated and gone.exit_code == -9
    assert t.get(child.pid) is None
    assert t.find(child.pid) is info and t.get_by_guid(info.guid) is info
    import time

    assert t.expire(time.monotonic() + 5) == 0, "still in its grace period"
    assert t.expire(time.monotonic() + 11) == 1
    assert t.get_by_guid(info.guid) is None


def test_guid_is_stable_and_differs_on_pid_reuse() -> None:
    assert process_guid(100, 5, "boot") == process_guid(100, 5, "boot")
    assert process_guid(100, 5, "boot") != process_guid(100, 6, "boot")
    g = process_guid(100, 5, "boot")
    assert g.startswith("{") and g.endswith("}") and len(g) == 38


def test_guid_is_the_name_based_uuid5_of_boot_pid_and_start() -> None:
    """The same value every agent version computed (a UUID v5), so stored GUIDs stay valid."""
    namespace = uuid.UUID("6b1f0f3c-7a55-4b1e-9d62-5f1b2b8f0a11")
    for pid, ticks in [(1, 0), (4242, 123456), (4_194_304, 2**40)]:
        expected = "{" + str(uuid.uuid5(namespace, f"boot-x/{pid}/{ticks}")) + "}"
        assert process_guid(pid, ticks, "boot-x") == expected


def test_hash_cache_keyed_by_stat(tmp_path: Path) -> None:
    f = tmp_path / "bin"
    shutil.copy("/bin/true", f)
    cache = HashCache()
    first = cache.hash_path(str(f))
    again = cache.hash_path(str(f))
    assert first is not None and again is not None and first == again
    assert (cache.misses, cache.hits) == (1, 1)
    with open(f, "ab") as out:
        out.write(b"changed")
    changed = cache.hash_path(str(f))
    assert changed is not None and changed[1]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert cache.misses == 2
    os.mkfifo(tmp_path / "fifo")
    assert cache.hash_path(str(tmp_path / "fifo")) is None  # not a regular file, and never blocks


def test_deleted_binary_is_flagged_and_still_hashed(tmp_path: Path) -> None:
    f = tmp_path / "dropper"
    shutil.copy("/bin/sleep", f)
    with open(f, "ab") as out:
        out.write(b"VIGIL-TEST-DROPPER")
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    p = subprocess.Popen([str(f), "5"])
    try:
        import time

        time.sleep(0.1)
        f.unlink()
        t = ProcessTracker()
        info = t.on_exec(p.pid)
        assert info.exe_deleted and info.image == str(f)
        assert info.sha256 == sha
    finally:
        p.kill()
        p.wait()


def test_threat_score_accumulates_per_signature() -> None:
    t = ProcessTracker(hash_images=False)
    t.seed()
    me = t.get(os.getpid())
    assert me is not None
    t.add_detection(me.guid, ["SuspiciousShell", "Beacon"], 5)
    t.add_detection(me.guid, ["Beacon"], 3)
    assert me.threat_score == 8 and me.signatures == {"SuspiciousShell": 1, "Beacon": 2}
