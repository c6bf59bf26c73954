"""The exec-permission responder: owns the fanotify group and answers every FAN_OPEN_EXEC_PERM.

``ExecResponder`` is the loop; ``ExecBlocker`` runs it either in a dedicated child process (the
default: ``python -m vigil.agent.actions._responder_main``) or in a thread. The process mode matters:
a responder thread shares the agent's GIL, so every exec on the machine would wait for the
agent's Python code to yield, and an exec made while the GIL is held (``os.posix_spawn``) would
deadlock until the group is closed.

Child protocol, one JSON object per line. Parent to child (stdin): ``{"blacklist": {sha256:
reason}, "seq": n}`` replaces the set and is acknowledged with ``{"ack": n}``; end of file
stops the child. Child to parent (stdout): first
``{"ready": {"marked": [...], "unmarked": {...}}}`` (or ``{"fatal": "..."}``), then ``{"event":
{...}}`` per denied exec and ``{"counters": {...}}`` at most once a second and at exit. The child
asks the kernel to kill it when the parent dies (PR_SET_PDEATHSIG), which closes the group: the
kernel then allows every pending and future exec.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from vigil.agent.actions import _fanotify as fan
from vigil.agent.actions._proc import exe_path, read_cmdline, sha256_fd
from vigil.agent.actions.errors import ActionUnavailable
from vigil.agent.actions.events import BLOCKED_EXEC, Event, operational_event

logger = logging.getLogger(__name__)

_CACHE_MAX = 8192
_PR_SET_PDEATHSIG = 1


def blocked_event(pid: int, target: str, digest: str, *, action: str, mechanism: str, reason: str) -> Event:
    """The `Vigil/Operational` 101 event for a denied or killed exec."""
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
            "Reason": reason,
        },
    )


class ExecResponder:
    """One fanotify exec-permission group and the loop that answers it."""

    def __init__(
        self,
        mounts: Sequence[str],
        *,
        on_deny: Callable[[Event], None],
        agent_pid: int,
        max_hash_bytes: int = 256 << 20,
        watchdog_seconds: float = 2.0,
    ) -> None:
        self.mounts = list(mounts)
        self.on_deny = on_deny
        self.agent_pid = agent_pid
        self.max_hash_bytes = max_hash_bytes
        self.watchdog_seconds = watchdog_seconds
        self.blacklist: Mapping[str, str] = {}
        self.marked: list[str] = []
        self.unmarked: dict[str, str] = {}
        self.counters = {"events": 0, "denied": 0, "errors": 0, "hashed": 0, "released": 0}
        self.fan_fd = -1
        self.armed = False
        self._cache: dict[tuple[int, int, int, int], str] = {}
        self._busy: tuple[float, int] | None = None

    def open(self) -> None:
        """Create the group and mark the filesystems. Raises ActionUnavailable."""
        try:
            self.fan_fd = fan.init(fan.FAN_CLASS_CONTENT | fan.FAN_CLOEXEC | fan.FAN_NONBLOCK)
        except OSError as exc:
            raise ActionUnavailable(
                f"fanotify exec permission events unavailable: {exc.strerror} "
                "(needs CAP_SYS_ADMIN and CONFIG_FANOTIFY_ACCESS_PERMISSIONS)",
                action="blacklist",
            ) from exc
        for path in self.mounts:
            try:
                fan.mark(
                    self.fan_fd, fan.FAN_MARK_ADD | fan.FAN_MARK_FILESYSTEM, fan.FAN_OPEN_EXEC_PERM, path
                )
                self.marked.append(path)
            except OSError as exc:
                self.unmarked[path] = exc.strerror or str(exc)
        self.armed = True
        self.set_blacklist(self.blacklist)

    def set_blacklist(self, blacklist: Mapping[str, str]) -> None:
        """Replace the blacklist. Marks exist only while it is non-empty: with nothing to block,
        execs on the host do not wait for the responder at all."""
        blacklist = dict(blacklist)
        if blacklist and not self.armed:
            for path in list(self.marked):
                try:
                    mask = fan.FAN_OPEN_EXEC_PERM
                    fan.mark(self.fan_fd, fan.FAN_MARK_ADD | fan.FAN_MARK_FILESYSTEM, mask, path)
                except OSError as exc:
                    self.marked.remove(path)
                    self.unmarked[path] = exc.strerror or str(exc)
            self.armed = True
        self.blacklist = blacklist
        if not blacklist and self.armed:
            try:
                fan.mark(self.fan_fd, fan.FAN_MARK_FLUSH | fan.FAN_MARK_FILESYSTEM, 0, "/")
                self.armed = False
            except OSError as exc:
                logger.warning("cannot flush exec marks: %s", exc)

    def close(self) -> None:
        if self.fan_fd >= 0:
            os.close(self.fan_fd)
            self.fan_fd = -1

    def handle_ready(self) -> None:
        """Read and answer one batch of events; every permission event is answered, allow on error."""
        for ev in fan.read_events(self.fan_fd):
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
                        fan.respond(self.fan_fd, ev.fd, allow)
                    self._busy = None
                    os.close(ev.fd)
                self._busy = None

    def _decide(self, ev: fan.FanEvent) -> bool:
        blacklist = self.blacklist
        if ev.pid == self.agent_pid or not blacklist:
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
        if digest not in blacklist:
            return True
        self.counters["denied"] += 1
        self.on_deny(
            blocked_event(
                ev.pid,
                fan.fd_path(ev.fd),
                digest,
                action="denied",
                mechanism="fanotify",
                reason=blacklist[digest],
            )
        )
        return False

    def watchdog_tick(self) -> None:
        """Release (allow) an event whose decision takes longer than ``watchdog_seconds``."""
        busy = self._busy
        if busy is not None and time.monotonic() - busy[0] > self.watchdog_seconds:
            logger.error("exec decision took over %.1fs; releasing the event", self.watchdog_seconds)
            fan.respond(self.fan_fd, busy[1], True)
            self.counters["released"] += 1
            self._busy = None

    def run(self, stop: threading.Event, wake_fd: int) -> None:
        """Answer events until ``stop`` is set (write to ``wake_fd``'s pipe to interrupt the wait)."""
        dog = threading.Thread(target=self._watchdog, args=(stop,), name="vigil-exec-watchdog", daemon=True)
        dog.start()
        poller = select.poll()
        poller.register(self.fan_fd, select.POLLIN)
        poller.register(wake_fd, select.POLLIN)
        while not stop.is_set():
            try:
                poller.poll(500)
                self.handle_ready()
            except OSError as exc:
                logger.error("exec responder read failed, stopping: %s", exc)
                return

    def _watchdog(self, stop: threading.Event) -> None:
        while not stop.wait(0.25):
            self.watchdog_tick()


# -- child process mode ---------------------------------------------------------------------------
def _emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the responder child; its only argument is a JSON settings object."""
    settings = json.loads((argv or sys.argv[1:])[0])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != settings["parent_pid"]:
        return 1  # the parent died before prctl took effect
    lock = threading.Lock()

    def on_deny(event: Event) -> None:
        with lock:
            _emit({"event": event})

    responder = ExecResponder(
        settings["mounts"],
        on_deny=on_deny,
        agent_pid=settings["agent_pid"],
        max_hash_bytes=settings["max_hash_bytes"],
        watchdog_seconds=settings["watchdog_seconds"],
    )
    responder.blacklist = settings.get("blacklist", {})
    try:
        responder.open()
    except ActionUnavailable as exc:
        _emit({"fatal": str(exc)})
        return 2
    ready = {"marked": responder.marked, "unmarked": responder.unmarked, "armed": responder.armed}
    _emit({"ready": {**ready, "pid": os.getpid()}})
    stop = threading.Event()
    dog = threading.Thread(target=responder._watchdog, args=(stop,), daemon=True)
    dog.start()
    stdin = sys.stdin.fileno()
    poller = select.poll()
    poller.register(responder.fan_fd, select.POLLIN)
    poller.register(stdin, select.POLLIN | select.POLLHUP)
    pending = b""
    last_counters: dict[str, int] = {}
    last_sent = 0.0
    while True:
        for fd, mask in poller.poll(1000):
            if fd == responder.fan_fd:
                responder.handle_ready()
                continue
            chunk = os.read(stdin, 1 << 20) if mask & (select.POLLIN | select.POLLHUP) else b""
            if not chunk:
                stop.set()
                responder.close()
                with lock:
                    _emit({"counters": responder.counters})
                return 0
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                msg = json.loads(line)
                if "blacklist" in msg:
                    responder.set_blacklist(msg["blacklist"])
                    with lock:
                        _emit({"ack": msg.get("seq", 0)})
        now = time.monotonic()
        if responder.counters != last_counters and now - last_sent >= 1.0:
            last_counters, last_sent = dict(responder.counters), now
            with lock:
                _emit({"counters": last_counters})


if __name__ == "__main__":
    sys.exit(main())
