"""Exec blacklist: deny a binary by sha256 before it runs, with kill-at-exec as a backstop.

``ExecBlocker`` holds one fanotify group (FAN_CLASS_CONTENT) with FAN_OPEN_EXEC_PERM marks on
every local filesystem (FAN_MARK_FILESYSTEM, so renamed and copied binaries are covered). A
dedicated thread answers every permission event: it hashes the opened file through the event
fd (pread; the kernel opened it with FMODE_NONOTIFY, so no recursion), and denies when the hash
is blacklisted. Any internal error allows. When the thread exits or the group is closed the
kernel allows everything, so a crash cannot freeze the machine; a watchdog releases an event
that takes too long.

Fileless (memfd) binaries and unmarked filesystems are covered by ``check_exec(pid)``, which the
pipeline calls on every ProcessCreate: hash /proc/PID/exe, kill the process when blacklisted.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import threading
import time
from collections.abc import Callable, Sequence

from vigil.agent.actions import _fanotify as fan
from vigil.agent.actions._proc import exe_path, read_cmdline, sha256_fd
from vigil.agent.actions.blacklist_store import Blacklist
from vigil.agent.actions.errors import ActionError, ActionUnavailable
from vigil.agent.actions.events import BLOCKED_EXEC, Event, operational_event
from vigil.agent.actions.kill import kill_process
from vigil.agent.actions.mounts import local_filesystems

logger = logging.getLogger(__name__)

EventSink = Callable[[Event], None]
_CACHE_MAX = 8192


class ExecBlocker:
    """Deny blacklisted executables at exec time (see module docstring).

    ``mounts``: paths whose filesystems are marked; default every local filesystem.
    ``on_event``: receives a `Vigil/Operational` 101 event per denied or killed exec (called
    from a notifier thread, never from the responder).
    """

    def __init__(
        self,
        blacklist: Blacklist,
        *,
        mounts: Sequence[str] | None = None,
        on_event: EventSink | None = None,
        agent_pid: int | None = None,
        max_hash_bytes: int = 256 << 20,
        watchdog_seconds: float = 2.0,
    ) -> None:
        self.blacklist = blacklist
        self._mounts = list(mounts) if mounts is not None else None
        self._on_event = on_event
        self.agent_pid = os.getpid() if agent_pid is None else agent_pid
        self.max_hash_bytes = max_hash_bytes
        self.watchdog_seconds = watchdog_seconds
        self.marked: list[str] = []
        self.unmarked: dict[str, str] = {}
        self.counters = {"events": 0, "denied": 0, "killed": 0, "errors": 0, "hashed": 0, "released": 0}
        self._cache: dict[tuple[int, int, int, int], str] = {}
        self._fan_fd = -1
        self._wake_r, self._wake_w = -1, -1
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._busy: tuple[float, int] | None = None
        self._notify: queue.SimpleQueue[Event | None] = queue.SimpleQueue()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._fan_fd >= 0 and not self._stop.is_set()

    def start(self) -> None:
        """Create the group, mark the filesystems, start the responder. Raises ActionUnavailable."""
        try:
            self._fan_fd = fan.init(fan.FAN_CLASS_CONTENT | fan.FAN_CLOEXEC | fan.FAN_NONBLOCK)
        except OSError as exc:
            raise ActionUnavailable(
                f"fanotify exec permission events unavailable: {exc.strerror} "
                "(needs CAP_SYS_ADMIN and CONFIG_FANOTIFY_ACCESS_PERMISSIONS)",
                action="blacklist",
            ) from exc
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        targets = self._mounts if self._mounts is not None else [m.mount_point for m in local_filesystems()]
        for path in targets:
            try:
                fan.mark(
                    self._fan_fd, fan.FAN_MARK_ADD | fan.FAN_MARK_FILESYSTEM, fan.FAN_OPEN_EXEC_PERM, path
                )
                self.marked.append(path)
            except OSError as exc:
                self.unmarked[path] = exc.strerror or str(exc)
                logger.warning("exec blocker cannot mark %s: %s (kill-at-exec covers it)", path, exc.strerror)
        self._stop.clear()
        for name, target in (
            ("vigil-exec-responder", self._respond_loop),
            ("vigil-exec-watchdog", self._watchdog_loop),
            ("vigil-exec-notify", self._notify_loop),
        ):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        logger.info("exec blocker marked %s; unmarked %s", self.marked, self.unmarked)

    def stop(self) -> None:
        """Stop the threads and close the group (the kernel drops the marks and allows pending events)."""
        self._stop.set()
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
        self._notify.put(None)
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()
        for fd in (self._fan_fd, self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._fan_fd = self._wake_r = self._wake_w = -1
        self.marked.clear()

    def __enter__(self) -> ExecBlocker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- blacklist -----------------------------------------------------------------------------
    def block(self, sha256: str, reason: str = "") -> None:
        """Add a sha256 to the persistent blacklist."""
        self.blacklist.add(sha256, reason)

    def unblock(self, sha256: str) -> bool:
        return self.blacklist.remove(sha256)

    # -- responder -----------------------------------------------------------------------------
    def _respond_loop(self) -> None:
        poller = select.poll()
        poller.register(self._fan_fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop.is_set():
            try:
                poller.poll(500)
                events = list(fan.read_events(self._fan_fd))
            except OSError as exc:
                logger.error("exec blocker read failed, stopping responder: %s", exc)
                return
            for ev in events:
                allow = True
                self._busy = (time.monotonic(), ev.fd)
                try:
                    self.counters["events"] += 1
                    if ev.mask & fan.FAN_OPEN_EXEC_PERM and ev.fd >= 0:
                        allow = self._decide(ev)
                except Exception:
                    self.counters["errors"] += 1
                    logger.exception("exec decision failed for pid %s; allowing", ev.pid)
                    allow = True
                finally:
                    if ev.fd >= 0:
                        if ev.mask & fan.FAN_PERM_EVENTS:
                            fan.respond(self._fan_fd, ev.fd, allow)
                        self._busy = None
                        os.close(ev.fd)
                    self._busy = None

    def _decide(self, ev: fan.FanEvent) -> bool:
        if ev.pid == self.agent_pid or not self.blacklist:
            return True
        st = os.fstat(ev.fd)
        key = (st.st_dev, st.st_ino, st.st_ctime_ns, st.st_size)
        digest = self._cache.get(key)
        if digest is None:
            if st.st_size > self.max_hash_bytes:
                return True
            digest = sha256_fd(ev.fd)
            self.counters["hashed"] += 1
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = digest
        if digest not in self.blacklist:
            return True
        self.counters["denied"] += 1
        self._notify.put(self._blocked_event(ev.pid, fan.fd_path(ev.fd), digest, "denied", "fanotify"))
        return False

    def _watchdog_loop(self) -> None:
        while not self._stop.wait(0.25):
            busy = self._busy
            if busy is not None and time.monotonic() - busy[0] > self.watchdog_seconds:
                logger.error("exec decision took over %.1fs; releasing the event", self.watchdog_seconds)
                fan.respond(self._fan_fd, busy[1], True)
                self.counters["released"] += 1
                self._busy = None

    def _notify_loop(self) -> None:
        while True:
            event = self._notify.get()
            if event is None:
                return
            if self._on_event is not None:
                try:
                    self._on_event(event)
                except Exception:
                    logger.exception("blocked-exec event sink failed")

    def _blocked_event(self, pid: int, target: str, digest: str, action: str, mechanism: str) -> Event:
        try:
            cmdline = " ".join(read_cmdline(pid))
        except OSError:
            cmdline = "?"
        return operational_event(
            BLOCKED_EXEC,
            {
                "ProcessId": pid,
                "Image": exe_path(pid) or "?",
                "CommandLine": cmdline,
                "TargetFilename": target,
                "Hashes": f"SHA256={digest.upper()}",
                "Action": action,
                "Mechanism": mechanism,
                "Reason": self.blacklist.reason(digest),
            },
        )

    # -- kill-at-exec backstop -----------------------------------------------------------------
    def check_exec(self, pid: int, start_ticks: int | None = None) -> bool:
        """Kill ``pid`` when its image (/proc/PID/exe, memfd included) is blacklisted.

        Returns True when the process was killed; False otherwise, on any error included.
        """
        if not self.blacklist:
            return False
        try:
            fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino, st.st_ctime_ns, st.st_size)
            digest = self._cache.get(key)
            if digest is None:
                if st.st_size > self.max_hash_bytes:
                    return False
                digest = sha256_fd(fd)
                self._cache[key] = digest
            if digest not in self.blacklist:
                return False
            target = fan.fd_path(fd)
            event = self._blocked_event(pid, target, digest, "killed", "kill-at-exec")
            kill_process(pid, agent_pid=self.agent_pid, start_ticks=start_ticks)
        except ActionError as exc:
            logger.info("kill-at-exec of pid %s not done: %s", pid, exc)
            return False
        except OSError as exc:
            logger.debug("kill-at-exec could not read pid %s: %s", pid, exc)
            return False
        finally:
            os.close(fd)
        self.counters["killed"] += 1
        if self.running:
            self._notify.put(event)
        else:
            self._emit_now(event)
        return True

    def _emit_now(self, event: Event) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                logger.exception("blocked-exec event sink failed")
