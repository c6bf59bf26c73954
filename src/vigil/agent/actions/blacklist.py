"""Exec blacklist: deny a binary by sha256 before it runs, with kill-at-exec as a backstop.

``ExecBlocker`` runs an ``ExecResponder`` (see ``_responder``): one fanotify group
(FAN_CLASS_CONTENT) with FAN_OPEN_EXEC_PERM marks on every local filesystem
(FAN_MARK_FILESYSTEM, so renamed and copied binaries are covered), answering every permission
event after hashing the opened file through the event fd. Any internal error allows. By default
the responder is a child process (``mode="process"``), so the agent's GIL never delays an exec
and the agent cannot deadlock it; ``mode="thread"`` runs it in the agent (never exec through
``os.posix_spawn`` from the agent then). When the responder dies the kernel allows everything;
a dead responder child is restarted within about a second.

Fileless (memfd) binaries and unmarked filesystems are covered by ``check_exec(pid)``, which the
pipeline calls on every ProcessCreate: hash /proc/PID/exe, kill the process when blacklisted.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from vigil.agent.actions import _fanotify as fan
from vigil.agent.actions._proc import sha256_fd
from vigil.agent.actions._responder import ExecResponder, blocked_event
from vigil.agent.actions.blacklist_store import Blacklist
from vigil.agent.actions.errors import ActionError, ActionUnavailable, InvalidInput
from vigil.agent.actions.events import Event
from vigil.agent.actions.kill import kill_process
from vigil.agent.actions.mounts import local_filesystems

logger = logging.getLogger(__name__)

EventSink = Callable[[Event], None]


class ExecBlocker:
    """Deny blacklisted executables at exec time (see module docstring).

    ``mounts``: paths whose filesystems are marked; default every local filesystem.
    ``on_event``: receives a `Vigil/Operational` 101 event per denied or killed exec (from a
    reader thread, never from the responder; keep it quick, e.g. a queue put).
    """

    def __init__(
        self,
        blacklist: Blacklist,
        *,
        mounts: Sequence[str] | None = None,
        on_event: EventSink | None = None,
        agent_pid: int | None = None,
        mode: str = "process",
        max_hash_bytes: int = 256 << 20,
        watchdog_seconds: float = 2.0,
    ) -> None:
        if mode not in ("process", "thread"):
            raise InvalidInput(f"blacklist mode: {mode!r} is not 'process' or 'thread'", action="blacklist")
        self.blacklist = blacklist
        self.mode = mode
        self._mounts = list(mounts) if mounts is not None else None
        self._on_event = on_event
        self.agent_pid = os.getpid() if agent_pid is None else agent_pid
        self.max_hash_bytes = max_hash_bytes
        self.watchdog_seconds = watchdog_seconds
        self.marked: list[str] = []
        self.unmarked: dict[str, str] = {}
        self._counters: dict[str, int] = {}
        self._killed = 0
        self._restarts = 0
        self._targets: list[str] = []
        self._cache: dict[tuple[int, int, int, int], str] = {}
        self._running = False
        self._child: subprocess.Popen[bytes] | None = None
        self._child_lock = threading.Lock()
        self._acked = threading.Condition()
        self._seq = self._ack = 0
        self._responder: ExecResponder | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._start_error = ""
        self._wake_r = self._wake_w = -1
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    @property
    def responder_pid(self) -> int | None:
        """Pid of the responder child (process mode), None otherwise."""
        return self._child.pid if self._child is not None else None

    @property
    def counters(self) -> dict[str, int]:
        """events, denied, errors, hashed, released (from the responder) and killed (kill-at-exec)."""
        base = dict(self._responder.counters) if self._responder is not None else dict(self._counters)
        for key in ("events", "denied", "errors", "hashed", "released"):
            base.setdefault(key, 0)
        base["killed"] = self._killed
        base["restarts"] = self._restarts
        return base

    def start(self) -> None:
        """Mark the filesystems and start answering. Raises ActionUnavailable."""
        targets = self._mounts if self._mounts is not None else [m.mount_point for m in local_filesystems()]
        self._targets = targets
        self._stop.clear()
        if self.mode == "thread":
            self._start_thread(targets)
        else:
            self._start_process(targets)
        self.blacklist.add_listener(self._push_blacklist)
        self._running = True
        logger.info("exec blocker (%s) marked %s; unmarked %s", self.mode, self.marked, self.unmarked)
        for path, why in self.unmarked.items():
            logger.warning("exec blocker cannot mark %s: %s (kill-at-exec covers it)", path, why)

    def _start_thread(self, targets: list[str]) -> None:
        responder = ExecResponder(
            targets,
            on_deny=self._emit,
            agent_pid=self.agent_pid,
            max_hash_bytes=self.max_hash_bytes,
            watchdog_seconds=self.watchdog_seconds,
        )
        responder.blacklist = self.blacklist.reasons()
        responder.open()
        self._responder = responder
        self.marked, self.unmarked = list(responder.marked), dict(responder.unmarked)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        t = threading.Thread(
            target=responder.run, args=(self._stop, self._wake_r), name="vigil-exec-responder"
        )
        t.daemon = True
        t.start()
        self._threads.append(t)

    def _start_process(self, targets: list[str]) -> None:
        self._ready.clear()
        self._start_error = ""
        t = threading.Thread(
            target=self._supervise, args=(targets,), name="vigil-exec-supervisor", daemon=True
        )
        t.start()
        self._threads.append(t)
        self._ready.wait(60)
        if self._start_error or not self._ready.is_set():
            t.join(timeout=5)
            self._threads.remove(t)
            raise ActionUnavailable(self._start_error or "exec responder did not start", action="blacklist")

    def _supervise(self, targets: list[str]) -> None:
        """Spawn the responder, relay its output, respawn it when it dies.

        Every spawn happens on this long-lived thread: PR_SET_PDEATHSIG fires when the *thread*
        that forked the child exits, so a child spawned by a short-lived thread would be killed.
        """
        first = True
        while not self._stop.is_set():
            try:
                child = self._spawn(targets)
            except ActionUnavailable as exc:
                if first:
                    self._start_error = str(exc)
                    self._ready.set()
                    return
                logger.error("exec responder restart failed: %s", exc)
                if self._stop.wait(1.0):
                    return
                continue
            if not first:
                self._restarts += 1
                logger.warning("exec responder restarted (pid %s)", child.pid)
            first = False
            self._ready.set()
            self._read_child(child)
            rc = child.wait()
            with self._child_lock:
                if self._child is child:
                    self._child = None
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    pipe.close()
            if self._stop.is_set():
                return
            logger.error("exec responder exited (rc %s): every exec is allowed until it is back", rc)
            if self._stop.wait(1.0):
                return

    def _spawn(self, targets: list[str]) -> subprocess.Popen[bytes]:
        settings = {
            "mounts": targets,
            "agent_pid": self.agent_pid,
            "parent_pid": os.getpid(),
            "max_hash_bytes": self.max_hash_bytes,
            "watchdog_seconds": self.watchdog_seconds,
            "blacklist": self.blacklist.reasons(),
        }
        argv = [sys.executable, "-m", "vigil.agent.actions._responder_main", json.dumps(settings)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert child.stdout is not None
        first = child.stdout.readline()
        hello: dict[str, Any]
        try:
            hello = json.loads(first) if first else {"fatal": "responder exited at start"}
        except ValueError:
            hello = {"fatal": f"responder said {first[:200]!r}"}
        if "ready" not in hello:
            child.kill()
            child.wait()
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    pipe.close()
            raise ActionUnavailable(str(hello.get("fatal", hello)), action="blacklist")
        with self._child_lock:
            self._child = child
        self.marked = list(hello["ready"]["marked"])
        self.unmarked = dict(hello["ready"]["unmarked"])
        return child

    def _read_child(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stdout is not None
        for line in child.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "event" in msg:
                msg["event"]["Event"]["System"]["Execution"]["ProcessID"] = os.getpid()
                self._emit(msg["event"])
            elif "counters" in msg:
                self._counters = dict(msg["counters"])
            elif "ack" in msg:
                with self._acked:
                    self._ack = max(self._ack, int(msg["ack"]))
                    self._acked.notify_all()

    def _push_blacklist(self) -> None:
        if self._responder is not None:
            self._responder.set_blacklist(self.blacklist.reasons())
        with self._child_lock:
            child = self._child
            if child is None or child.stdin is None:
                return
            self._seq += 1
            seq = self._seq
            try:
                msg = {"blacklist": self.blacklist.reasons(), "seq": seq}
                child.stdin.write(json.dumps(msg).encode() + b"\n")
                child.stdin.flush()
            except (OSError, ValueError) as exc:
                logger.error("cannot update the exec responder: %s", exc)
                return
        with self._acked:  # block() returns once the responder enforces the new set
            if not self._acked.wait_for(lambda: self._ack >= seq, timeout=5):
                logger.error("exec responder did not acknowledge blacklist update %s", seq)

    def stop(self) -> None:
        """Stop answering; closing the group drops the marks and allows pending events."""
        self._running = False
        self.blacklist.remove_listener(self._push_blacklist)
        self._stop.set()
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        with self._child_lock:
            child = self._child
            if child is not None and child.stdin is not None:
                child.stdin.close()  # end of file: the responder closes its group and exits
        if child is not None:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()
        if self._responder is not None:
            self._counters = dict(self._responder.counters)
            self._responder.close()
            self._responder = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def __enter__(self) -> ExecBlocker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- blacklist -----------------------------------------------------------------------------
    def block(self, sha256: str, reason: str = "") -> None:
        """Add a sha256 to the persistent blacklist (the responder sees it at once)."""
        self.blacklist.add(sha256, reason)

    def unblock(self, sha256: str) -> bool:
        return self.blacklist.remove(sha256)

    def _emit(self, event: Event) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                logger.exception("blocked-exec event sink failed")

    # -- kill-at-exec backstop -----------------------------------------------------------------
    def check_exec(self, pid: int, start_ticks: int | None = None, sha256: str | None = None) -> bool:
        """Kill ``pid`` when its image (/proc/PID/exe, memfd included) is blacklisted.

        ``sha256``: the image hash when the caller already has it (the tracker hashes every exec),
        so nothing is read; otherwise /proc/PID/exe is hashed (cached by inode). Returns True when
        the process was killed; False otherwise, on any error included.
        """
        if not self.blacklist:
            return False
        if sha256 is not None and sha256.lower() not in self.blacklist:
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
                if len(self._cache) > 8192:
                    self._cache.clear()
                self._cache[key] = digest
            if digest not in self.blacklist:
                return False
            event = blocked_event(
                pid,
                fan.fd_path(fd),
                digest,
                action="killed",
                mechanism="kill-at-exec",
                reason=self.blacklist.reason(digest),
            )
            kill_process(pid, agent_pid=self.agent_pid, start_ticks=start_ticks)
        except ActionError as exc:
            logger.info("kill-at-exec of pid %s not done: %s", pid, exc)
            return False
        except OSError as exc:
            logger.debug("kill-at-exec could not read pid %s: %s", pid, exc)
            return False
        finally:
            os.close(fd)
        self._killed += 1
        self._emit(event)
        return True
