"""Socket inventory from /proc/net/{tcp,udp}{,6} and the socket-inode -> pid map.

Polling misses connections shorter than the interval (audit `connect` gives the events); the
inventory shows what is open now, with the owning process. The helpers are also used to find the
process behind a DNS packet (by source port) and the protocol of an audited connect (by fd).
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from dataclasses import dataclass

from vigil.agent.sources.base import EventSource, is_root

logger = logging.getLogger(__name__)

TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
    7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
}  # fmt: skip


@dataclass(frozen=True)
class SocketEntry:
    proto: str  # tcp, udp, tcp6, udp6
    laddr: str
    lport: int
    raddr: str
    rport: int
    state: str
    uid: int
    inode: int


def _addr(hexaddr: str) -> tuple[str, int]:
    host, port = hexaddr.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port, 16)
    # IPv6: four host-order 32-bit words.
    words = struct.unpack("<4I", raw)
    return socket.inet_ntop(socket.AF_INET6, struct.pack(">4I", *words)), int(port, 16)


def read_table(path: str, proto: str) -> list[SocketEntry]:
    out = []
    try:
        with open(path) as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) < 10:
                    continue
                laddr, lport = _addr(parts[1])
                raddr, rport = _addr(parts[2])
                st = int(parts[3], 16)
                state = (
                    TCP_STATES.get(st, str(st))
                    if proto.startswith("tcp")
                    else ("CONNECTED" if rport else "UNCONN")
                )
                out.append(
                    SocketEntry(proto, laddr, lport, raddr, rport, state, int(parts[7]), int(parts[9]))
                )
    except OSError:
        pass
    return out


def read_sockets(
    net_dir: str = "/proc/net", protos: tuple[str, ...] = ("tcp", "tcp6", "udp", "udp6")
) -> list[SocketEntry]:
    """Every socket in the network namespace of `net_dir` (`/proc/PID/net` for another one)."""
    out = []
    for proto in protos:
        out.extend(read_table(f"{net_dir}/{proto}", proto))
    return out


def inode_to_pid() -> dict[int, int]:
    """socket inode -> pid, from readlink /proc/*/fd/* (first owner wins)."""
    owners: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fd_dir = f"/proc/{name}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owners.setdefault(int(target[8:-1]), int(name))
    return owners


def socket_inode(pid: int, fd: int) -> int | None:
    try:
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return None
    return int(target[8:-1]) if target.startswith("socket:[") else None


def socket_of_fd(pid: int, fd: int) -> SocketEntry | None:
    """The /proc/PID/net entry of the socket on `fd` of `pid` (protocol and local address)."""
    inode = socket_inode(pid, fd)
    if inode is None:
        return None
    for entry in read_sockets(f"/proc/{pid}/net"):
        if entry.inode == inode:
            return entry
    return None


class NetInventorySource(EventSource):
    """Polls the socket inventory; emits `socket` records for new sockets, `socket_closed` for gone ones."""

    name = "netinv"

    def __init__(self, interval_s: float = 5.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._seen: set[int] = set()

    def requirements(self) -> list[str]:
        unmet = []
        if not os.path.exists("/proc/net/tcp"):
            unmet.append("/proc/net/tcp is missing (no procfs or no IPv4)")
        if not is_root():
            unmet.append("mapping sockets to processes reads every /proc/PID/fd and needs root")
        return unmet

    def _open(self) -> None:
        self._seen = set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval_s)

    def poll_once(self) -> int:
        entries = [e for e in read_sockets() if e.inode]
        # Mapping sockets to processes lists every /proc/PID/fd: only when there is a new socket.
        owners = inode_to_pid() if any(e.inode not in self._seen for e in entries) else {}
        current = set()
        new = 0
        for e in entries:
            current.add(e.inode)
            self._received += 1
            if e.inode in self._seen:
                continue
            new += 1
            self._emit(
                {
                    "type": "socket",
                    "pid": owners.get(e.inode, -1),
                    "proto": e.proto,
                    "laddr": e.laddr,
                    "lport": e.lport,
                    "raddr": e.raddr,
                    "rport": e.rport,
                    "state": e.state,
                    "uid": e.uid,
                    "inode": e.inode,
                }
            )
        for inode in self._seen - current:
            self._emit({"type": "socket_closed", "inode": inode})
        self._seen = current
        return new
