"""The contract every event source implements.

A source owns its threads and kernel objects. It turns kernel records into small *raw records*
(plain dicts with a `"type"` key, documented in docs/agent-events.md under "Raw records") and hands
them to `sink`; the sensor's single pipeline thread turns raw records into Sysmon-shaped events.
`requirements()` must have no side effects: `vigil agent doctor` calls it on a live host.
"""

from __future__ import annotations

import abc
import errno
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigil.agent.sources._recvmmsg import DatagramReader
    from vigil.agent.sources.loop import SourceLoop

logger = logging.getLogger(__name__)

RawRecord = dict[str, Any]
Sink = Callable[[RawRecord], None]


class SourceUnavailable(Exception):
    """A source cannot start here; `reasons` are human sentences (what is missing and why)."""

    def __init__(self, source: str, reasons: list[str]) -> None:
        self.source = source
        self.reasons = reasons
        super().__init__(f"source {source!r} unavailable: " + "; ".join(reasons))


class EventSource(abc.ABC):
    """One kernel mechanism that produces raw records."""

    name: str = "base"
    #: True when the source can be read by a shared SourceLoop (it implements _loop_fd and _drain).
    loop_capable: bool = False

    def __init__(self) -> None:
        self._received = 0
        self._emitted = 0
        self._dropped = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sink: Sink | None = None
        self._wakefd = -1  # an eventfd readers poll beside their kernel fd: stop() writes it
        self._loop: SourceLoop | None = None
        self._loop_registered = -1  # the fd registered with the loop, while it is

    def attach_loop(self, loop: SourceLoop) -> None:
        """Be read by `loop` instead of a thread of our own (when `loop_capable`); before start()."""
        if self.loop_capable:
            self._loop = loop

    @abc.abstractmethod
    def requirements(self) -> list[str]:
        """Every unmet need as a sentence; [] when the source can run. No side effects."""

    def start(self, sink: Sink) -> None:
        """Open kernel objects and start the reading thread(s)."""
        unmet = self.requirements()
        if unmet:
            raise SourceUnavailable(self.name, unmet)
        self._sink = sink
        self._stop.clear()
        self._wakefd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            self._open()
        except BaseException:
            os.close(self._wakefd)
            self._wakefd = -1
            raise
        if self._loop is not None:
            fd = self._loop_fd()
            self._loop.register(fd, self._drain, self._idle_ms)
            self._loop_registered = fd
        else:
            self._spawn(self._run, f"vigil-{self.name}")

    def stop(self) -> None:
        """Stop threads and remove whatever this source installed (rules, marks)."""
        self._stop.set()
        self._wake()
        if self._loop is not None and self._loop_registered >= 0:
            self._loop.unregister(self._loop_registered)  # waits for a read in progress
            self._loop_registered = -1
        for t in self._threads:
            t.join(timeout=5)
            if t.is_alive():
                logger.warning("source %s: thread %s did not stop within 5 s", self.name, t.name)
        self._threads.clear()
        self._close()
        if self._wakefd >= 0:
            os.close(self._wakefd)
            self._wakefd = -1

    def stats(self) -> dict[str, int]:
        return {"received": self._received, "emitted": self._emitted, "dropped": self._dropped}

    # -- for subclasses ---------------------------------------------------------------------------
    @abc.abstractmethod
    def _open(self) -> None:
        """Acquire kernel objects; raise OSError when that fails."""

    @abc.abstractmethod
    def _run(self) -> None:
        """Thread body: read until `self._stop` is set."""

    def _loop_fd(self) -> int:
        """The descriptor a SourceLoop polls (loop_capable sources)."""
        raise NotImplementedError

    def _drain(self) -> None:
        """Read and handle every record waiting, without blocking (loop_capable sources)."""
        raise NotImplementedError

    def _idle_ms(self) -> int | None:
        """Milliseconds until `_drain` must run even without data; None: only on data."""
        return None

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Release kernel objects and remove installed rules or marks."""

    def _wake(self) -> None:
        """Unblock `_run` so it sees the stop flag: readers poll `self._wakefd` beside their fd,
        so they can wait without a timeout (an idle source makes no wakeups)."""
        if self._wakefd >= 0:
            os.eventfd_write(self._wakefd, 1)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=self._guarded, args=(target,), name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def _guarded(self, target: Callable[[], None]) -> None:
        try:
            target()
        except Exception:
            if not self._stop.is_set():
                logger.exception("source %s: reader thread crashed", self.name)

    def _read_batch(self, reader: DatagramReader) -> list[bytes]:
        """The datagrams waiting on ``reader``'s socket; [] when the kernel overran the socket
        (ENOBUFS: counted and reported downstream as a ``lost`` record) or the source is stopping."""
        try:
            return reader.read()
        except OSError as e:
            if e.errno == errno.ENOBUFS:
                self._dropped += 1
                self._emit({"type": "lost", "count": 1})
                return []
            if self._stop.is_set():
                return []
            raise

    def _emit(self, record: RawRecord) -> None:
        record.setdefault("source", self.name)
        sink = self._sink
        if sink is None:
            self._dropped += 1
            return
        try:
            sink(record)
            self._emitted += 1
        except Exception:
            self._dropped += 1
            logger.exception("source %s: sink refused a record", self.name)


def is_root() -> bool:
    return os.geteuid() == 0


def has_capability(bit: int) -> bool:
    """Whether the effective capability set holds capability number `bit`."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except OSError:
        return False
    return False


CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
CAP_SYS_ADMIN = 21
CAP_AUDIT_CONTROL = 30
CAP_AUDIT_READ = 37
CAP_SYS_PTRACE = 19
CAP_DAC_READ_SEARCH = 2
