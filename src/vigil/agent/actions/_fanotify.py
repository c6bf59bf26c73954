"""Thin ctypes binding of fanotify(7): init, mark, read events, answer permission events.

Only what the exec blocker and the canary watcher need. Constants are from <linux/fanotify.h>.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

FAN_ACCESS = 0x00000001
FAN_MODIFY = 0x00000002
FAN_CLOSE_WRITE = 0x00000008
FAN_CLOSE_NOWRITE = 0x00000010
FAN_OPEN = 0x00000020
FAN_OPEN_EXEC = 0x00001000
FAN_Q_OVERFLOW = 0x00004000
FAN_OPEN_PERM = 0x00010000
FAN_ACCESS_PERM = 0x00020000
FAN_OPEN_EXEC_PERM = 0x00040000
FAN_EVENT_ON_CHILD = 0x08000000
FAN_ONDIR = 0x40000000
FAN_PERM_EVENTS = FAN_OPEN_PERM | FAN_ACCESS_PERM | FAN_OPEN_EXEC_PERM

FAN_CLOEXEC = 0x00000001
FAN_NONBLOCK = 0x00000002
FAN_CLASS_NOTIF = 0x00000000
FAN_CLASS_CONTENT = 0x00000004

FAN_MARK_ADD = 0x00000001
FAN_MARK_REMOVE = 0x00000002
FAN_MARK_FLUSH = 0x00000080
FAN_MARK_INODE = 0x00000000
FAN_MARK_FILESYSTEM = 0x00000100

FAN_ALLOW = 0x01
FAN_DENY = 0x02
FAN_NOFD = -1

AT_FDCWD = -100
_META = struct.Struct("=IBBHQii")  # event_len, vers, reserved, metadata_len, mask, fd, pid
_RESPONSE = struct.Struct("=iI")  # fd, response
_MASK_NAMES = {
    FAN_ACCESS: "FAN_ACCESS",
    FAN_MODIFY: "FAN_MODIFY",
    FAN_CLOSE_WRITE: "FAN_CLOSE_WRITE",
    FAN_CLOSE_NOWRITE: "FAN_CLOSE_NOWRITE",
    FAN_OPEN: "FAN_OPEN",
    FAN_OPEN_EXEC: "FAN_OPEN_EXEC",
    FAN_OPEN_PERM: "FAN_OPEN_PERM",
    FAN_ACCESS_PERM: "FAN_ACCESS_PERM",
    FAN_OPEN_EXEC_PERM: "FAN_OPEN_EXEC_PERM",
    FAN_ONDIR: "FAN_ONDIR",
}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
_libc.fanotify_init.restype = ctypes.c_int
_libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
_libc.fanotify_mark.restype = ctypes.c_int


@dataclass(frozen=True, slots=True)
class FanEvent:
    """One fanotify event; ``fd`` is an open descriptor to the file (or FAN_NOFD) owned by the reader."""

    mask: int
    fd: int
    pid: int


def init(flags: int, event_flags: int = os.O_RDONLY | os.O_LARGEFILE | os.O_CLOEXEC) -> int:
    """fanotify_init(2); raises OSError with the kernel's errno."""
    fd = _libc.fanotify_init(flags, event_flags)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"fanotify_init: {os.strerror(err)}")
    return int(fd)


def mark(fan_fd: int, flags: int, mask: int, path: str) -> None:
    """fanotify_mark(2) on ``path``; raises OSError naming the path."""
    if _libc.fanotify_mark(fan_fd, flags, mask, AT_FDCWD, os.fsencode(path)) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"fanotify_mark: {os.strerror(err)}", path)


def read_events(fan_fd: int, bufsize: int = 65536) -> Iterator[FanEvent]:
    """Read one batch of events; yields nothing when a non-blocking read would block."""
    try:
        buf = os.read(fan_fd, bufsize)
    except BlockingIOError:
        return
    except OSError as exc:
        if exc.errno == errno.EINTR:
            return
        raise
    off = 0
    while off + _META.size <= len(buf):
        ev_len, _vers, _res, _meta_len, mask, fd, pid = _META.unpack_from(buf, off)
        if ev_len < _META.size:
            break
        yield FanEvent(mask=mask, fd=fd, pid=pid)
        off += ev_len


def respond(fan_fd: int, event_fd: int, allow: bool) -> None:
    """Answer a permission event. Never raises: an unanswerable event is released when the group closes."""
    try:
        os.write(fan_fd, _RESPONSE.pack(event_fd, FAN_ALLOW if allow else FAN_DENY))
    except OSError:
        pass


def mask_names(mask: int) -> str:
    """``FAN_OPEN|FAN_ACCESS`` style text for a mask."""
    return "|".join(name for bit, name in _MASK_NAMES.items() if mask & bit) or hex(mask)


def fd_path(fd: int) -> str:
    """Path of an event fd as the kernel names it (may end in ' (deleted)')."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"
