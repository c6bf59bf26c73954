"""Many datagrams per system call: recvmmsg(2) through ctypes, with a recv() loop as fallback.

Netlink sources get one datagram per kernel record (audit sends about eight per exec, cn_proc three),
so reading them one recv() at a time costs a system call, a GIL round trip and a Python loop turn
each. `DatagramReader.read()` returns every datagram waiting on a non-blocking socket, up to
`batch` per system call and at most `max_calls` calls per read(). The buffers are allocated once.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import sys

MSG_DONTWAIT = 0x40


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_IoVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


def _libc_recvmmsg() -> object | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.recvmmsg
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return fn


_RECVMMSG = _libc_recvmmsg()


class DatagramReader:
    """Reads every waiting datagram of `sock` (made non-blocking) in as few system calls as it can.

    `read()` returns a list of bytes (empty when nothing waits) and raises OSError for socket
    errors such as ENOBUFS (the kernel dropped datagrams because the receive buffer was full).
    Datagrams longer than `size` are truncated, as recv(size) would.
    """

    def __init__(
        self, sock: socket.socket, *, batch: int = 64, size: int = 16384, max_calls: int = 16
    ) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.batch = batch
        self.max_calls = max_calls  # system calls per read(), so one read() is bounded
        self.size = size
        self.calls = 0  # system calls made, for the source's statistics
        self._error = 0  # an error met after some datagrams were read: raised by the next read()
        self._fd = sock.fileno()
        self._fn = _RECVMMSG
        if self._fn is not None:
            self._bufs = ctypes.create_string_buffer(size * batch)
            base = ctypes.addressof(self._bufs)
            self._iovs = (_IoVec * batch)()
            self._msgs = (_MMsgHdr * batch)()
            for i in range(batch):
                self._iovs[i].iov_base = base + i * size
                self._iovs[i].iov_len = size
                self._msgs[i].msg_hdr.msg_iov = ctypes.pointer(self._iovs[i])
                self._msgs[i].msg_hdr.msg_iovlen = 1
            self._base = base
            # plain views over the ctypes arrays: cheaper to read than ctypes field access
            self._data = memoryview(self._bufs).cast("B")
            self._lens = memoryview(self._msgs).cast("B")
            self._len_at = [i * ctypes.sizeof(_MMsgHdr) + _MMsgHdr.msg_len.offset for i in range(batch)]

    def read(self) -> list[bytes]:
        if self._error:
            err, self._error = self._error, 0
            raise OSError(err, os.strerror(err))
        if self._fn is None:
            return self._read_loop()
        out: list[bytes] = []
        for _ in range(self.max_calls):
            self.calls += 1
            n = self._fn(self._fd, ctypes.addressof(self._msgs), self.batch, MSG_DONTWAIT, None)  # type: ignore[operator]
            if n < 0:
                err = ctypes.get_errno()
                if err in (errno.EAGAIN, errno.EINTR):
                    return out
                if out:
                    self._error = err  # hand over what was read; the error comes with the next read
                    return out
                raise OSError(err, os.strerror(err))
            data, lens, size = self._data, self._lens, self.size
            for i in range(n):
                at = self._len_at[i]
                length = int.from_bytes(lens[at : at + 4], sys.byteorder)
                start = i * size
                out.append(bytes(data[start : start + min(length, size)]))
            if n < self.batch:
                return out
        return out  # more may wait: the caller polls again (bounded work per call)

    def _read_loop(self) -> list[bytes]:
        out: list[bytes] = []
        recv = self.sock.recv
        while len(out) < self.batch * self.max_calls:
            self.calls += 1
            try:
                out.append(recv(self.size))
            except BlockingIOError:
                break
            except OSError as e:
                if out and e.errno is not None:
                    self._error = e.errno
                    break
                raise
        return out
