"""Fixtures for action tests: unique test binaries, orphaned victims, a local ProcessInfo."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (fanotify/pidfd on other processes)")


@dataclass
class ProcessInfo:
    """Stand-in for the sensors' ProcessInfo (same fields) until it lands."""

    pid: int
    ppid: int = 0
    guid: str = ""
    image: str = ""
    command_line: str = ""
    cwd: str = "/"
    user: str = "root"
    uid: int = 0
    start_ticks: int = 0
    start_time: float = 0.0
    hashes: dict[str, str] = field(default_factory=dict)
    sha256: str = ""


def unique_copy(src: str, dst: Path, tag: str | None = None) -> Path:
    """Copy ``src`` to ``dst`` with unique bytes appended: its sha256 exists nowhere else."""
    shutil.copyfile(src, dst)
    with open(dst, "ab") as f:
        f.write(b"\0VIGIL-TEST-" + (tag or uuid.uuid4().hex).encode())
    dst.chmod(0o755)
    return dst


class Orphans:
    """Processes the test starts detached from pytest (so the agent-children guard does not apply)."""

    def __init__(self) -> None:
        self.pidfds: dict[int, int] = {}

    def spawn(self, argv: list[str]) -> int:
        script = 'exec "$@" </dev/null >/dev/null 2>&1'
        out = subprocess.run(
            ["sh", "-c", f"sh -c '{script}' vigil-test \"$@\" & echo $!", "launcher", *argv],
            capture_output=True,
            text=True,
            check=True,
        )
        pid = int(out.stdout.strip())
        self.pidfds[pid] = os.pidfd_open(pid)
        return pid

    def wait_exit(self, pid: int, timeout: float = 5.0) -> bool:
        """True when the process exited within ``timeout`` (its pidfd turns readable)."""
        ready, _, _ = select.select([self.pidfds[pid]], [], [], timeout)
        return bool(ready)

    def alive(self, pid: int) -> bool:
        return not self.wait_exit(pid, 0)

    def cleanup(self) -> None:
        for pidfd in self.pidfds.values():
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.close(pidfd)
        self.pidfds.clear()


@pytest.fixture
def orphans() -> Iterator[Orphans]:
    o = Orphans()
    try:
        yield o
    finally:
        o.cleanup()
