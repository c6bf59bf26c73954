"""Run by test_blacklist.py under ``timeout -s KILL``: the blocker with whole-filesystem marks on
/ and /dev/shm (the local filesystems the default list starts with) for about a second.
Blacklists only a unique test binary; copies on / and on /dev/shm must both be refused while
every other exec on the machine runs normally. Other mounts are left alone on this shared machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

from vigil.agent.actions.blacklist import ExecBlocker
from vigil.agent.actions.blacklist_store import Blacklist
from vigil.agent.actions.mounts import local_filesystems


def main(workdir: str, tag: str) -> None:
    on_root = os.path.join(workdir, "evil-true")
    on_shm = f"/dev/shm/vigil-test-{tag}"
    shutil.copyfile("/bin/true", on_root)
    with open(on_root, "ab") as f:
        f.write(b"\0VIGIL-TEST-BLACKLISTED-" + tag.encode())
    os.chmod(on_root, 0o755)
    shutil.copy2(on_root, on_shm)
    with open(on_root, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    result: dict = {}
    blacklist = Blacklist(None)
    blacklist.add(digest, "test")
    blocker = ExecBlocker(blacklist, mounts=["/", "/dev/shm"])
    try:
        blocker.start()
        result["marked"] = list(blocker.marked)
        result["default"] = [m.mount_point for m in local_filesystems()]
        result["unmarked"] = dict(blocker.unmarked)
        result["root_rc"] = subprocess.run(["sh", "-c", on_root], check=False).returncode
        result["shm_rc"] = subprocess.run(["sh", "-c", on_shm], check=False).returncode
        result["true_rc"] = subprocess.run(["/bin/true"], check=False).returncode
    finally:
        blocker.stop()
        os.unlink(on_shm)
    result["counters"] = dict(blocker.counters)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
