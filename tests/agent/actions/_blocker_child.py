"""Run inside a private mount namespace by test_blacklist.py: mount a tmpfs, block a test binary on it.

Only that tmpfs is marked, so even a hung responder could only delay execs from this tmpfs, in
this namespace. Prints one JSON object with what happened.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from vigil.agent.actions.blacklist import ExecBlocker
from vigil.agent.actions.blacklist_store import Blacklist

MS_PRIVATE, MS_REC = 1 << 18, 1 << 14


def main(root: str, tag: str, mode: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "make / private")
    if libc.mount(b"vigil-test", root.encode(), b"tmpfs", 0, b"size=64m") != 0:
        raise OSError(ctypes.get_errno(), "mount tmpfs")
    evil = os.path.join(root, "evil-true")
    shutil.copyfile("/bin/true", evil)
    with open(evil, "ab") as f:
        f.write(b"\0VIGIL-TEST-BLACKLISTED-" + tag.encode())
    os.chmod(evil, 0o755)
    renamed = os.path.join(root, "innocent-name")
    shutil.copy2(evil, renamed)
    plain = os.path.join(root, "plain-true")
    shutil.copy2("/bin/true", plain)
    with open(evil, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    script = os.path.join(root, "evil.sh")
    with open(script, "w") as f:
        f.write(f"#!/bin/sh\nexit 0\n# VIGIL-TEST-{tag}\n")
    os.chmod(script, 0o755)
    with open(script, "rb") as f:
        script_digest = hashlib.sha256(f.read()).hexdigest()

    events: list[dict] = []
    result: dict = {"sha256": digest}
    blacklist = Blacklist(os.path.join(root, "state", "blacklist.json"))
    blocker = ExecBlocker(blacklist, mounts=[root], on_event=events.append, mode=mode)
    blocker.start()
    try:
        result["marked"] = list(blocker.marked)
        result["before_block_rc"] = subprocess.run([evil], check=False).returncode
        blocker.block(digest, "test")
        result["evil_rc"] = subprocess.run(["sh", "-c", evil], check=False).returncode
        result["renamed_rc"] = subprocess.run(["sh", "-c", renamed], check=False).returncode
        result["plain_rc"] = subprocess.run(["sh", "-c", plain], check=False).returncode
        result["system_true_rc"] = subprocess.run(["/bin/true"], check=False).returncode
        blocker.block(script_digest, "test script")
        result["script_exec_rc"] = subprocess.run(["sh", "-c", script], check=False).returncode
        result["script_read_rc"] = subprocess.run(["sh", script], check=False).returncode
        try:
            subprocess.run([evil], check=False)
            result["python_error"] = None
        except PermissionError as exc:
            result["python_error"] = exc.errno
        blocker.unblock(digest)
        blocker.unblock(script_digest)  # empty blacklist: marks flushed, nothing is checked
        result["unblocked_rc"] = subprocess.run([evil], check=False).returncode
        blocker.block(digest, "test")  # re-armed
        result["reblocked_rc"] = subprocess.run(["sh", "-c", evil], check=False).returncode
        deadline = time.monotonic() + 5
        while len(events) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        blocker.stop()
    result["counters"] = dict(blocker.counters)
    result["after_stop_rc"] = subprocess.run([evil], check=False).returncode
    result["persisted"] = digest in Blacklist(os.path.join(root, "state", "blacklist.json"))
    result["events"] = events
    # a restarted agent enforces the persisted blacklist again
    restarted = ExecBlocker(
        Blacklist(os.path.join(root, "state", "blacklist.json")), mounts=[root], mode=mode
    )
    restarted.start()
    try:
        result["restarted_rc"] = subprocess.run([evil], check=False, stderr=subprocess.DEVNULL).returncode
    except PermissionError:
        result["restarted_rc"] = 126
    # a responder that dies leaves nothing blocked: the kernel allows once the group is gone
    if mode == "process":
        assert restarted.responder_pid is not None
        first = restarted.responder_pid
        os.kill(first, signal.SIGKILL)
        time.sleep(0.2)
        result["after_crash_rc"] = subprocess.run([evil], check=False).returncode
        deadline = time.monotonic() + 10
        while restarted.responder_pid in (None, first) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)
        result["after_restart_rc"] = subprocess.run(["sh", "-c", evil], check=False).returncode
        result["restarts"] = restarted.counters["restarts"]
    restarted.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
