"""One reader thread for the exec-path sources (cn_proc, audit, fanotify_exec).

An exec reaches the agent as a fork, an exec and an exit from cn_proc, about seven audit records
and a fanotify event, spread over a millisecond or two. With one thread per source every piece
woke its own thread (and the GIL hand-off between them), about six wakeups per exec, and at
ordinary exec rates the wakeups, not the parsing, were the agent's CPU. This loop waits on all the
sources' descriptors in one epoll; after a wakeup from idle it waits `coalesce_s` more, so the rest
of the exec is waiting too, then lets each ready source read everything it has (while busy, passes
follow each other without the wait). The latency this adds is
`coalesce_s` (2 ms by default, against an alert budget of 20 ms).

A source joins with `register(fd, drain, idle)`: `drain()` reads its descriptor without blocking;
`idle()` returns the milliseconds until it needs calling even without data (None: never), and is
called when that time comes (audit's groups that never saw their EOE).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

Drain = Callable[[], None]
Idle = Callable[[], "int | None"]


class SourceLoop:
    """A thread multiplexing non-blocking source descriptors; see the module docstring."""

    def __init__(self, *, coalesce_s: float = 0.002) -> None:
        if coalesce_s < 0:
            raise ValueError(f"coalesce_s must be >= 0, got {coalesce_s}")
        self.coalesce_s = coalesce_s
        self.wakeups = 0
        self._entries: dict[int, tuple[Drain, Idle | None]] = {}
        self._lock = threading.Lock()  # held while sources are called: unregister waits for it
        self._epoll: select.epoll | None = None
        self._wakefd = -1
        self._thread: threading.Thread | None = None
        self._stop = False

    def start(self) -> None:
        self._epoll = select.epoll()
        self._wakefd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._epoll.register(self._wakefd, select.EPOLLIN)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="vigil-sources", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive():
                logger.warning("source loop: thread did not stop within 5 s")
            self._thread = None
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        if self._wakefd >= 0:
            os.close(self._wakefd)
            self._wakefd = -1

    def register(self, fd: int, drain: Drain, idle: Idle | None = None) -> None:
        if self._epoll is None:
            raise RuntimeError("the source loop is not running")
        with self._lock:
            self._entries[fd] = (drain, idle)
            self._epoll.register(fd, select.EPOLLIN)
        self._wake()  # recompute the idle timeout

    def unregister(self, fd: int) -> None:
        """Stop watching `fd`; returns once no call into its source is running."""
        with self._lock:
            if self._entries.pop(fd, None) is not None and self._epoll is not None:
                try:
                    self._epoll.unregister(fd)
                except (OSError, ValueError):
                    pass

    def _wake(self) -> None:
        if self._wakefd >= 0:
            os.eventfd_write(self._wakefd, 1)

    def _timeout(self) -> float:
        wait: int | None = None
        for _drain, idle in self._entries.values():
            if idle is not None:
                ms = idle()
                if ms is not None and (wait is None or ms < wait):
                    wait = ms
        return -1 if wait is None else max(0, wait) / 1000

    def _run(self) -> None:
        epoll = self._epoll
        assert epoll is not None
        last_pass = 0.0  # when the last pass over ready sources ended
        while not self._stop:
            with self._lock:
                timeout = self._timeout()
            try:
                ready = epoll.poll(timeout)
            except InterruptedError:
                continue
            self.wakeups += 1
            if self._stop:
                return
            if ready and self.coalesce_s and time.monotonic() - last_pass > self.coalesce_s:
                # Woken from idle: the rest of the exec arrives meanwhile. Not while busy (the
                # last pass just ended): records pile up during a pass anyway, and a wait per
                # pass would cap the rate a burst is read at.
                time.sleep(self.coalesce_s)
                ready = epoll.poll(0)
            with self._lock:
                for fd, _mask in ready:
                    if fd == self._wakefd:
                        try:
                            os.eventfd_read(fd)
                        except BlockingIOError:
                            pass
                        continue
                    entry = self._entries.get(fd)
                    if entry is not None:
                        self._call(entry[0])
                for _drain, idle in list(self._entries.values()):
                    if idle is not None:
                        ms = idle()
                        if ms is not None and ms <= 0:
                            self._call(_drain, idle_only=True)
            last_pass = time.monotonic()

    def _call(self, drain: Drain, *, idle_only: bool = False) -> None:
        try:
            drain()
        except Exception:
            logger.exception("source loop: a source failed %s", "its idle work" if idle_only else "to read")
