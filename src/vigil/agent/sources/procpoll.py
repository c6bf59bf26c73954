"""Process start/exit by polling /proc: for containers without netlink or audit rights.

Lossy by nature: a process that lives shorter than the interval is never seen. Exec within an
existing pid is detected by a changed /proc/PID/exe target; a new pid that runs its parent's image
is reported as a fork. Kernel threads (no exe) are not reported.
"""

from __future__ import annotations

import logging
import os

from vigil.agent.guid import start_ticks_of
from vigil.agent.sources.base import EventSource

logger = logging.getLogger(__name__)


def _ppid_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rfind(b")") + 2 :].split()[1])
    except (OSError, IndexError, ValueError):
        return None


class ProcPollSource(EventSource):
    """Emits `exec` (pid only) and `exit` records by diffing /proc."""

    name = "procpoll"

    def __init__(self, interval_s: float = 0.2) -> None:
        super().__init__()
        if interval_s <= 0:
            raise ValueError(f"procpoll interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self._known: dict[int, tuple[int | None, str | None]] = {}

    def requirements(self) -> list[str]:
        return [] if os.path.isdir("/proc/self") else ["/proc is not mounted"]

    def _open(self) -> None:
        self._known = self._scan()

    @staticmethod
    def _scan() -> dict[int, tuple[int | None, str | None]]:
        out: dict[int, tuple[int | None, str | None]] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                pid = int(name)
                try:
                    exe: str | None = os.readlink(f"/proc/{pid}/exe")
                except OSError:
                    exe = None
                out[pid] = (start_ticks_of(pid), exe)
        return out

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll_once()

    def poll_once(self) -> None:
        now = self._scan()
        for pid, (start, exe) in list(now.items()):
            old = self._known.get(pid)
            if exe is None and (old is None or old[0] != start):
                # mid-exec, or a kernel thread (never reported): look again at the next poll
                del now[pid]
                continue
            if old is None or old[0] != start:
                if old is not None:
                    self._emit({"type": "exit", "pid": pid})
                self._received += 1
                ppid = _ppid_of(pid)
                parent = now.get(ppid) if ppid is not None else None
                if parent is not None and parent[1] == exe:
                    # same image as its parent: a fork that has not exec'd (yet)
                    self._emit({"type": "fork", "pid": pid, "ppid": ppid})
                else:
                    self._emit({"type": "exec", "pid": pid})
            elif old[1] != exe and exe is not None:
                self._received += 1
                self._emit({"type": "exec", "pid": pid})
        for pid in self._known.keys() - now.keys():
            self._received += 1
            self._emit({"type": "exit", "pid": pid})
        self._known = now
