"""File create/delete on watched directory trees: fanotify with DFID_NAME, inotify as fallback.

fanotify (CAP_SYS_ADMIN) names the process that created or deleted the file; inotify does not
(`pid` is -1). Both watch each directory of the tree and add new subdirectories as they appear.
A rename into a watched directory counts as a create (Sysmon reports the same).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import struct
import time

from vigil.agent.sources import _fanotify as fan
from vigil.agent.sources.base import CAP_SYS_ADMIN, EventSource, has_capability

logger = logging.getLogger(__name__)

IN_MOVED_TO, IN_CREATE, IN_DELETE, IN_Q_OVERFLOW, IN_IGNORED, IN_ISDIR = (
    0x80,
    0x100,
    0x200,
    0x4000,
    0x8000,
    0x40000000,
)
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
_INEV = struct.Struct("=iIII")
_libc = ctypes.CDLL(None, use_errno=True)
_FAN_MASK = fan.FAN_CREATE | fan.FAN_DELETE | fan.FAN_MOVED_TO | fan.FAN_ONDIR


class FileSource(EventSource):
    """Emits `file_create` and `file_delete` records (pid, path, is_dir)."""

    name = "files"

    def __init__(self, paths: list[str] | None = None, mode: str = "auto", recursive: bool = True) -> None:
        super().__init__()
        if mode not in ("auto", "fanotify", "inotify"):
            raise ValueError(f"files mode must be auto, fanotify or inotify, got {mode!r}")
        self.paths = [os.path.realpath(p) for p in (paths or [])]
        self.requested_mode = mode
        self.recursive = recursive
        self.mode: str | None = None
        self._fd = -1
        self._dirs: dict[object, str] = {}  # fanotify dir handle / inotify wd -> path

    def requirements(self) -> list[str]:
        unmet = []
        if not self.paths:
            unmet.append("no paths to watch (set watch_paths)")
        unmet += [f"watched path {p} is not a directory" for p in self.paths if not os.path.isdir(p)]
        if self.requested_mode == "fanotify" and not has_capability(CAP_SYS_ADMIN):
            unmet.append("fanotify needs CAP_SYS_ADMIN; use mode inotify (no process attribution)")
        return unmet

    def _open(self) -> None:
        use_fan = self.requested_mode == "fanotify" or (
            self.requested_mode == "auto" and has_capability(CAP_SYS_ADMIN)
        )
        if use_fan:
            try:
                self._fd = fan.init(
                    fan.FAN_CLASS_NOTIF | fan.FAN_CLOEXEC | fan.FAN_NONBLOCK | fan.FAN_REPORT_DFID_NAME,
                    os.O_RDONLY,
                )
                self.mode = "fanotify"
            except OSError as e:
                if self.requested_mode == "fanotify":
                    raise
                logger.info("files: fanotify unavailable (%s), using inotify", e.strerror)
        if self.mode is None:
            fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            if fd < 0:
                err = ctypes.get_errno()
                raise OSError(err, f"inotify_init1: {os.strerror(err)}")
            self._fd = fd
            self.mode = "inotify"
        try:
            for root in self.paths:
                self._watch_tree(root)
        except BaseException:
            self._close()
            raise

    def _watch_tree(self, root: str) -> None:
        self._watch(root)
        if self.recursive:
            for dirpath, dirnames, _ in os.walk(root):
                for d in dirnames:
                    self._watch(os.path.join(dirpath, d))

    def _watch(self, path: str) -> None:
        if self.mode == "fanotify":
            fan.mark(self._fd, fan.FAN_MARK_ADD | fan.FAN_MARK_ONLYDIR, _FAN_MASK, path)
            self._dirs[fan.dir_handle(path)] = path
        else:
            wd = _libc.inotify_add_watch(self._fd, path.encode(), IN_CREATE | IN_DELETE | IN_MOVED_TO)
            if wd < 0:
                err = ctypes.get_errno()
                raise OSError(err, f"inotify_add_watch({path}): {os.strerror(err)}")
            self._dirs[wd] = path

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # removes every mark / watch of this group
            self._fd = -1
        self._dirs.clear()

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wakefd, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll():
                continue
            try:
                if self.mode == "fanotify":
                    self._read_fanotify()
                else:
                    self._read_inotify()
            except BlockingIOError:
                continue

    def _report(self, created: bool, path: str, pid: int, is_dir: bool) -> None:
        self._emit(
            {
                "type": "file_create" if created else "file_delete",
                "pid": pid,
                "path": path,
                "is_dir": is_dir,
                "ts_ns": time.time_ns(),
            }
        )
        if created and is_dir and self.recursive:
            try:
                self._watch_tree(path)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    logger.warning("files: cannot watch new directory %s: %s", path, e.strerror)

    def _read_fanotify(self) -> None:
        for ev in fan.read_events(self._fd):
            self._received += 1
            if ev.mask & fan.FAN_Q_OVERFLOW:
                self._dropped += 1
                self._emit({"type": "lost", "count": 1})
                continue
            if ev.fd >= 0:
                os.close(ev.fd)
            parent = self._dirs.get(ev.dir_handle) if ev.dir_handle is not None else None
            if parent is None or not ev.name or ev.name == ".":
                continue
            is_dir = bool(ev.mask & fan.FAN_ONDIR)
            path = os.path.join(parent, ev.name)
            if ev.mask & (fan.FAN_CREATE | fan.FAN_MOVED_TO):
                self._report(True, path, ev.pid, is_dir)
            if ev.mask & fan.FAN_DELETE:
                self._report(False, path, ev.pid, is_dir)

    def _read_inotify(self) -> None:
        buf = os.read(self._fd, 1 << 16)
        off = 0
        while off + _INEV.size <= len(buf):
            wd, mask, _cookie, ln = _INEV.unpack_from(buf, off)
            name = (
                buf[off + _INEV.size : off + _INEV.size + ln]
                .split(b"\0", 1)[0]
                .decode(errors="surrogateescape")
            )
            off += _INEV.size + ln
            self._received += 1
            if mask & IN_Q_OVERFLOW:
                self._dropped += 1
                self._emit({"type": "lost", "count": 1})
                continue
            if mask & IN_IGNORED:
                self._dirs.pop(wd, None)
                continue
            parent = self._dirs.get(wd)
            if parent is None or not name:
                continue
            path = os.path.join(parent, name)
            self._report(bool(mask & (IN_CREATE | IN_MOVED_TO)), path, -1, bool(mask & IN_ISDIR))
