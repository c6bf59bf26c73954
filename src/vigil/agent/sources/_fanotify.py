"""fanotify through ctypes: init, mark, and event parsing (metadata + FID/DFID_NAME/PIDFD infos)."""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_CLASS_NOTIF = 0x0
FAN_REPORT_FID = 0x200
FAN_REPORT_DIR_FID = 0x400
FAN_REPORT_NAME = 0x800
FAN_REPORT_DFID_NAME = FAN_REPORT_DIR_FID | FAN_REPORT_NAME

FAN_MARK_ADD = 0x1
FAN_MARK_REMOVE = 0x2
FAN_MARK_ONLYDIR = 0x8
FAN_MARK_IGNORED_MASK = 0x20
FAN_MARK_IGNORED_SURV_MODIFY = 0x40
FAN_MARK_FILESYSTEM = 0x100

FAN_ACCESS = 0x1
FAN_MODIFY = 0x2
FAN_CLOSE_WRITE = 0x8
FAN_OPEN = 0x20
FAN_MOVED_FROM = 0x40
FAN_MOVED_TO = 0x80
FAN_CREATE = 0x100
FAN_DELETE = 0x200
FAN_OPEN_EXEC = 0x1000
FAN_Q_OVERFLOW = 0x4000
FAN_ONDIR = 0x40000000

FAN_NOFD = -1
INFO_FID, INFO_DFID_NAME, INFO_DFID, INFO_PIDFD = 1, 2, 3, 4
AT_FDCWD = -100
MAX_HANDLE_SZ = 128

META = struct.Struct("=IBBHQii")
_INFO_HDR = struct.Struct("=BBH")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
_libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
_libc.name_to_handle_at.argtypes = [
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_int),
    ctypes.c_int,
]


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def init(flags: int, event_flags: int = os.O_RDONLY | os.O_LARGEFILE | os.O_CLOEXEC) -> int:
    return _check(_libc.fanotify_init(flags, event_flags), "fanotify_init")


def mark(fd: int, flags: int, mask: int, path: str) -> None:
    _check(_libc.fanotify_mark(fd, flags, mask, AT_FDCWD, path.encode()), f"fanotify_mark({path})")


def dir_handle(path: str) -> bytes:
    """The file handle of `path` as fanotify reports it (handle_type + f_handle bytes)."""
    buf = ctypes.create_string_buffer(8 + MAX_HANDLE_SZ)
    struct.pack_into("=Ii", buf, 0, MAX_HANDLE_SZ, 0)
    mount_id = ctypes.c_int()
    _check(
        _libc.name_to_handle_at(AT_FDCWD, path.encode(), buf, ctypes.byref(mount_id), 0),
        f"name_to_handle_at({path})",
    )
    size, htype = struct.unpack_from("=Ii", buf.raw)
    return struct.pack("=i", htype) + buf.raw[8 : 8 + size]


@dataclass
class FanEvent:
    mask: int
    fd: int
    pid: int
    dir_handle: bytes | None = None
    name: str | None = None
    extra: dict[int, bytes] = field(default_factory=dict)


def read_events(fan_fd: int, bufsize: int = 1 << 16) -> Iterator[FanEvent]:
    buf = os.read(fan_fd, bufsize)
    off = 0
    while off + META.size <= len(buf):
        ev_len, _vers, _res, meta_len, mask, fd, pid = META.unpack_from(buf, off)
        if ev_len < META.size:
            return
        ev = FanEvent(mask, fd, pid)
        p = off + meta_len
        end = off + ev_len
        while p + _INFO_HDR.size <= end:
            itype, _pad, ilen = _INFO_HDR.unpack_from(buf, p)
            if ilen < _INFO_HDR.size:
                break
            body = buf[p + _INFO_HDR.size : p + ilen]
            if itype in (INFO_DFID_NAME, INFO_DFID, INFO_FID) and len(body) >= 16:
                hsize, htype = struct.unpack_from("=Ii", body, 8)
                handle = struct.pack("=i", htype) + body[16 : 16 + hsize]
                ev.dir_handle = handle
                if itype == INFO_DFID_NAME:
                    ev.name = body[16 + hsize :].split(b"\0", 1)[0].decode(errors="surrogateescape")
            else:
                ev.extra[itype] = body
            p += ilen
        yield ev
        off += ev_len
