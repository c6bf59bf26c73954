"""Canary files: decoys that nobody legitimate opens; whoever opens one raises an alert.

``CanaryManager.install()`` creates the decoy directories and files of each group (random bytes)
and records what it created in a state file, so ``uninstall()`` removes exactly that, even after a
restart. ``start()`` watches them:

- **fanotify** (root): FAN_OPEN_PERM marks on each decoy file, and on directories the manager
  created (with their children). The opener waits for our answer, always "allow", so its pid
  and image are read from /proc while it still exists: race-free attribution. Any error allows.
- **inotify** (fallback, unprivileged): the kernel does not say who opened the file, and the
  event says so (``ProcessId`` -1, ``Image`` "?").

Each access gives one `Vigil/Operational` event 100 (EventData: TargetFilename, ProcessId,
Image, CommandLine, User, AccessType, Mechanism). Opens by the agent and its children, and by
whitelisted images, are ignored.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import pwd
import random
import select
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vigil.agent.actions import _fanotify as fan
from vigil.agent.actions._proc import exe_path, is_descendant, read_cmdline, read_status_ids
from vigil.agent.actions.errors import ActionUnavailable, InvalidInput
from vigil.agent.actions.events import CANARY_ACCESS, Event, operational_event

logger = logging.getLogger(__name__)

IN_ACCESS, IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE, IN_OPEN = 0x1, 0x2, 0x4, 0x8, 0x20
IN_DELETE_SELF, IN_MOVE_SELF, IN_CREATE, IN_DELETE = 0x400, 0x800, 0x100, 0x200
IN_CLOEXEC, IN_NONBLOCK = 0o2000000, 0o4000
_IN_EVENT = struct.Struct("=iIII")
_IN_NAMES = {IN_ACCESS: "IN_ACCESS", IN_MODIFY: "IN_MODIFY", IN_ATTRIB: "IN_ATTRIB", IN_OPEN: "IN_OPEN",
             IN_CLOSE_WRITE: "IN_CLOSE_WRITE", IN_DELETE_SELF: "IN_DELETE_SELF", IN_MOVE_SELF: "IN_MOVE_SELF",
             IN_CREATE: "IN_CREATE", IN_DELETE: "IN_DELETE"}  # fmt: skip
_FILE_MASK = IN_OPEN | IN_ACCESS | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF
_DIR_MASK = IN_OPEN | IN_CREATE | IN_DELETE | IN_ATTRIB

EventSink = Callable[[Event], None]


@dataclass(frozen=True)
class CanaryGroup:
    """Decoy ``files`` (names) placed in each of ``directories``; ``delete`` removes created dirs."""

    directories: Sequence[str]
    files: Sequence[str]
    delete: bool = True
    min_size: int = 1024
    max_size: int = 64 * 1024

    def __post_init__(self) -> None:
        for name in self.files:
            if not name or "/" in name or name in (".", ".."):
                raise InvalidInput(f"canaries.group.files: {name!r} must be a plain file name", target=name)
        if not 0 <= self.min_size <= self.max_size:
            raise InvalidInput(f"canaries.group: min-size {self.min_size} > max-size {self.max_size}")


@dataclass
class _State:
    files: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)


class CanaryManager:
    """Create, watch and remove canary files (see module docstring)."""

    def __init__(
        self,
        groups: Sequence[CanaryGroup],
        *,
        state_path: str | os.PathLike[str],
        on_event: EventSink | None = None,
        whitelist: Sequence[str] = (),
        agent_pid: int | None = None,
    ) -> None:
        self.groups = list(groups)
        self.state_path = Path(state_path)
        self._on_event = on_event
        self.whitelist = frozenset(whitelist)
        self.agent_pid = os.getpid() if agent_pid is None else agent_pid
        self.backend = ""
        self.counters = {"events": 0, "alerts": 0, "ignored": 0, "errors": 0}
        self._state = self._load_state()
        self._fd = -1
        self._wake_r = self._wake_w = -1
        self._wds: dict[int, str] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last: dict[tuple[int, str], float] = {}

    # -- files -------------------------------------------------------------------------------
    @property
    def files(self) -> list[str]:
        return list(self._state.files)

    @property
    def created_dirs(self) -> list[str]:
        return list(self._state.dirs)

    def _load_state(self) -> _State:
        try:
            doc = json.loads(self.state_path.read_text())
            return _State(files=list(doc.get("files", [])), dirs=list(doc.get("dirs", [])))
        except FileNotFoundError:
            return _State()
        except (OSError, ValueError, AttributeError) as exc:
            raise InvalidInput(f"{self.state_path}: unreadable canary state: {exc}") from exc

    def _save_state(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps({"files": self._state.files, "dirs": self._state.dirs}, indent=1))
        os.replace(tmp, self.state_path)

    def install(self) -> list[str]:
        """Create missing decoy directories and files; returns every canary file path."""
        rng = random.SystemRandom()
        for group in self.groups:
            for raw_dir in group.directories:
                directory = Path(os.path.expandvars(os.path.expanduser(raw_dir))).absolute()
                if not directory.exists():
                    directory.mkdir(parents=True, mode=0o755)
                    if group.delete and str(directory) not in self._state.dirs:
                        self._state.dirs.append(str(directory))
                for name in group.files:
                    path = directory / name
                    if not path.exists():
                        path.write_bytes(os.urandom(rng.randint(group.min_size, group.max_size)))
                    if str(path) not in self._state.files:
                        self._state.files.append(str(path))
        self._save_state()
        return self.files

    def uninstall(self) -> None:
        """Stop watching, delete the decoy files and the directories this manager created."""
        self.stop()
        for path in self._state.files:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.warning("cannot remove canary %s: %s", path, exc)
        for directory in sorted(self._state.dirs, key=len, reverse=True):
            try:
                os.rmdir(directory)
            except OSError as exc:
                logger.warning("canary directory %s left in place: %s", directory, exc)
        self._state = _State()
        self.state_path.unlink(missing_ok=True)

    # -- watching ----------------------------------------------------------------------------
    def start(self, backend: str = "auto") -> str:
        """Watch the canaries with ``fanotify``, ``inotify`` or ``auto`` (fanotify, else inotify)."""
        if backend not in ("auto", "fanotify", "inotify"):
            raise InvalidInput(f"canaries backend: {backend!r} is not auto, fanotify or inotify")
        if not self._state.files:
            self.install()
        if backend in ("auto", "fanotify"):
            try:
                self._start_fanotify()
            except ActionUnavailable:
                if backend == "fanotify":
                    raise
                logger.warning("fanotify unavailable for canaries; inotify cannot name the process")
        if self._fd < 0:
            self._start_inotify()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="vigil-canaries", daemon=True)
        self._thread.start()
        return self.backend

    def stop(self) -> None:
        self._stop.set()
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._fd, self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._fd = self._wake_r = self._wake_w = -1
        self._wds.clear()

    def _start_fanotify(self) -> None:
        try:
            fd = fan.init(fan.FAN_CLASS_CONTENT | fan.FAN_CLOEXEC | fan.FAN_NONBLOCK)
        except OSError as exc:
            raise ActionUnavailable(f"fanotify: {exc.strerror}", action="canaries") from exc
        try:
            for path in self._state.files:
                fan.mark(fd, fan.FAN_MARK_ADD, fan.FAN_OPEN_PERM, path)
            for directory in self._state.dirs:
                mask = fan.FAN_OPEN_PERM | fan.FAN_ONDIR | fan.FAN_EVENT_ON_CHILD
                fan.mark(fd, fan.FAN_MARK_ADD, mask, directory)
        except OSError as exc:
            os.close(fd)
            raise ActionUnavailable(f"fanotify mark failed on {exc.filename}: {exc.strerror}") from exc
        self._fd, self.backend = fd, "fanotify"

    def _start_inotify(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(IN_CLOEXEC | IN_NONBLOCK)
        if fd < 0:
            raise ActionUnavailable(f"inotify: {os.strerror(ctypes.get_errno())}", action="canaries")
        for path, mask in [(p, _FILE_MASK) for p in self._state.files] + [
            (d, _DIR_MASK) for d in self._state.dirs
        ]:
            wd = libc.inotify_add_watch(fd, os.fsencode(path), mask)
            if wd < 0:
                logger.warning("inotify cannot watch %s: %s", path, os.strerror(ctypes.get_errno()))
                continue
            self._wds[wd] = path
        self._fd, self.backend = fd, "inotify"

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop.is_set():
            try:
                poller.poll(500)
                if self.backend == "fanotify":
                    self._drain_fanotify()
                else:
                    self._drain_inotify()
            except OSError as exc:
                if self._stop.is_set():
                    return
                self.counters["errors"] += 1
                logger.error("canary watcher read failed: %s", exc)
                time.sleep(0.1)

    def _drain_fanotify(self) -> None:
        for ev in fan.read_events(self._fd):
            event = None
            try:
                self.counters["events"] += 1
                path = fan.fd_path(ev.fd) if ev.fd >= 0 else "?"
                event = self._alert(ev.pid, path, fan.mask_names(ev.mask), "fanotify")
            except Exception:
                self.counters["errors"] += 1
                logger.exception("canary event handling failed")
            finally:
                if ev.fd >= 0:
                    if ev.mask & fan.FAN_PERM_EVENTS:
                        fan.respond(self._fd, ev.fd, True)
                    os.close(ev.fd)
            if event is not None:  # emitted after the answer: the opener never waits for the sink
                self._emit(event)

    def _drain_inotify(self) -> None:
        try:
            buf = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        off = 0
        while off + _IN_EVENT.size <= len(buf):
            wd, mask, _cookie, length = _IN_EVENT.unpack_from(buf, off)
            name = (
                buf[off + _IN_EVENT.size : off + _IN_EVENT.size + length]
                .rstrip(b"\0")
                .decode(errors="replace")
            )
            off += _IN_EVENT.size + length
            self.counters["events"] += 1
            base = self._wds.get(wd, "?")
            access = "|".join(n for bit, n in _IN_NAMES.items() if mask & bit) or hex(mask)
            event = self._alert(-1, os.path.join(base, name) if name else base, access, "inotify")
            if event is not None:
                self._emit(event)

    def _alert(self, pid: int, path: str, access: str, mechanism: str) -> Event | None:
        """The canary event for this access, or None when it is ignored."""
        image, cmdline, user = "?", "?", "?"
        if pid > 0:
            if pid == self.agent_pid or (self.agent_pid > 1 and is_descendant(pid, self.agent_pid)):
                self.counters["ignored"] += 1
                return None
            image = exe_path(pid) or "?"
            if image in self.whitelist:
                self.counters["ignored"] += 1
                return None
            try:
                cmdline = " ".join(read_cmdline(pid))
                uid, _ = read_status_ids(pid)
                user = pwd.getpwuid(uid).pw_name
            except (OSError, KeyError):
                pass
        now = time.monotonic()
        key = (pid, path)
        if pid > 0 and now - self._last.get(key, 0.0) < 1.0:
            return None  # open + read + close of one file by one process is one alert
        self._last[key] = now
        if len(self._last) > 4096:
            self._last.clear()
        self.counters["alerts"] += 1
        data = {
            "TargetFilename": path,
            "ProcessId": pid,
            "Image": image,
            "CommandLine": cmdline,
            "User": user,
            "AccessType": access,
            "Mechanism": mechanism,
        }
        if mechanism == "inotify":
            data["Note"] = "inotify cannot name the process that touched the file"
        logger.warning("canary %s touched by pid %s (%s)", path, pid, image)
        return operational_event(CANARY_ACCESS, data)

    def _emit(self, event: Event) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                logger.exception("canary event sink failed")
