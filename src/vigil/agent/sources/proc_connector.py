"""Process fork/exec/exit from the netlink process connector (cn_proc).

Cheap and always on, but exec events carry only the pid: the pipeline reads the rest from /proc or
takes it from audit EXECVE records. Needs CAP_NET_ADMIN and the initial network namespace (the
connector exists only there). Loss shows up as ENOBUFS and is reported as a `lost` record.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct

from vigil.agent.sources._recvmmsg import DatagramReader
from vigil.agent.sources.base import CAP_NET_ADMIN, EventSource, has_capability

logger = logging.getLogger(__name__)

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
NLMSG_DONE = 3
SO_RCVBUFFORCE = 33

PROC_EVENT_FORK = 0x00000001
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_EXIT = 0x80000000

_NLHDR = struct.Struct("=IHHII")
_CNMSG = struct.Struct("=IIIIHH")
_EVHDR = struct.Struct("=IIQ")
_FORK = struct.Struct("=IIII")
_EXEC = struct.Struct("=II")
_EXIT = struct.Struct("=IIIIII")


def _same_netns_as_init() -> bool | None:
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat("/proc/1/ns/net").st_ino
    except OSError:
        return None


class ProcConnectorSource(EventSource):
    """Emits `fork`, `exec` (pid only), `exit` and `lost` records."""

    name = "proc_connector"
    loop_capable = True

    def __init__(self, rcvbuf: int = 32 << 20) -> None:
        super().__init__()
        self.rcvbuf = rcvbuf
        self._sock: socket.socket | None = None
        self._reader: DatagramReader | None = None

    def requirements(self) -> list[str]:
        unmet = []
        if not has_capability(CAP_NET_ADMIN):
            unmet.append("the process connector needs CAP_NET_ADMIN (run the agent as root)")
        if _same_netns_as_init() is False:
            unmet.append(
                "the process connector exists only in the initial network namespace and the agent "
                "runs in another one (a container?): use the procpoll source"
            )
        return unmet

    def _control(self, op: int) -> None:
        assert self._sock is not None
        payload = struct.pack("=I", op)
        cn = _CNMSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
        self._sock.send(_NLHDR.pack(_NLHDR.size + len(cn), NLMSG_DONE, 0, 0, os.getpid()) + cn)

    def _open(self) -> None:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        try:
            try:
                s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.rcvbuf)
            except OSError:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            s.bind((0, CN_IDX_PROC))  # port id 0: the kernel assigns one (several listeners per process)
            self._sock = s
            self._control(PROC_CN_MCAST_LISTEN)
        except OSError:
            s.close()
            self._sock = None
            raise

    def _close(self) -> None:
        if self._sock is not None:
            try:
                self._control(PROC_CN_MCAST_IGNORE)
            except OSError:
                pass
            self._sock.close()
            self._sock = None

    def _loop_fd(self) -> int:
        assert self._sock is not None
        return self._sock.fileno()

    def _run(self) -> None:
        assert self._sock is not None
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        poller.register(self._wakefd, select.POLLIN)
        while not self._stop.is_set():
            if poller.poll():
                self._drain()

    def _drain(self) -> None:
        reader = self._reader
        if reader is None or reader.sock is not self._sock:
            assert self._sock is not None
            reader = self._reader = DatagramReader(self._sock, batch=128, size=4096)
        for buf in self._read_batch(reader):
            self._parse(buf)

    def stats(self) -> dict[str, int]:
        out = super().stats()
        out["recv_calls"] = self._reader.calls if self._reader is not None else 0
        return out

    def _parse(self, buf: bytes) -> None:
        off = 0
        while off + _NLHDR.size <= len(buf):
            ln = _NLHDR.unpack_from(buf, off)[0]
            if ln < _NLHDR.size:
                return
            p = off + _NLHDR.size + _CNMSG.size
            if p + _EVHDR.size <= off + ln:
                self._received += 1
                self._event(buf, p)
            off += (ln + 3) & ~3

    def _event(self, buf: bytes, p: int) -> None:
        what, _cpu, ts = _EVHDR.unpack_from(buf, p)
        d = p + _EVHDR.size
        if what == PROC_EVENT_EXEC:
            pid, tgid = _EXEC.unpack_from(buf, d)
            if pid == tgid:
                self._emit({"type": "exec", "pid": tgid, "mono_ns": ts})
        elif what == PROC_EVENT_FORK:
            _ppid, ptgid, cpid, ctgid = _FORK.unpack_from(buf, d)
            if cpid == ctgid:  # a new process, not a thread
                self._emit({"type": "fork", "pid": ctgid, "ppid": ptgid, "mono_ns": ts})
        elif what == PROC_EVENT_EXIT:
            pid, tgid, code, _sig, _ppid, _ptgid = _EXIT.unpack_from(buf, d)
            if pid == tgid:
                self._emit({"type": "exit", "pid": tgid, "status": code, "mono_ns": ts})
