"""DNS queries from an AF_PACKET socket: qname and qtype of outgoing udp/53 packets.

A classic BPF filter keeps only UDP packets to port 53 (IPv4 unfragmented, IPv6 without extension
headers), so the kernel does the sorting. The sending process comes from the source port: the
socket inode in /proc/net/udp{,6} of the namespace, then the pid that holds that inode, which is
racy for clients that close the socket at once. `netns` (a path such as /run/netns/NAME) makes the
reader thread enter that network namespace before opening the socket. Not seen: DNS over TCP, DoT,
DoH.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import socket
import struct
import threading
import time

from vigil.agent.sources.base import CAP_NET_RAW, CAP_SYS_ADMIN, EventSource, has_capability
from vigil.agent.sources.netinv import inode_to_pid, read_table

logger = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
CLONE_NEWNET = 0x40000000

# (code, jt, jf, k): accept UDP to port 53 over IPv4 (no fragments) or IPv6.
_FILTER = [
    (0x20, 0, 0, 0xFFFFF000),  # A = skb->protocol
    (0x15, 0, 7, 0x0800),  # IPv4?
    (0x30, 0, 0, 9),  # A = ip protocol
    (0x15, 0, 11, 17),  # UDP?
    (0x28, 0, 0, 6),  # A = flags + fragment offset
    (0x45, 9, 0, 0x1FFF),  # fragment -> reject
    (0xB1, 0, 0, 0),  # X = IHL * 4
    (0x48, 0, 0, 2),  # A = udp dport
    (0x15, 5, 6, 53),
    (0x15, 0, 5, 0x86DD),  # IPv6?
    (0x30, 0, 0, 6),  # next header
    (0x15, 0, 3, 17),
    (0x28, 0, 0, 42),  # udp dport
    (0x15, 0, 1, 53),
    (0x06, 0, 0, 0x40000),  # accept
    (0x06, 0, 0, 0),  # reject
]


def attach_filter(sock: socket.socket) -> None:
    prog = b"".join(struct.pack("=HBBI", *ins) for ins in _FILTER)
    buf = ctypes.create_string_buffer(prog)
    fprog = struct.pack("HP", len(_FILTER), ctypes.addressof(buf))  # struct sock_fprog, native layout
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def enter_netns(path: str) -> None:
    """Move the calling thread (only) into the network namespace at `path`."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def parse_query(packet: bytes) -> dict[str, object] | None:
    """Source/destination and the first question of a DNS query in an IP packet, else None."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        ihl = (packet[0] & 0x0F) * 4
        if packet[9] != 17:
            return None
        saddr, daddr = (
            socket.inet_ntop(socket.AF_INET, packet[12:16]),
            socket.inet_ntop(socket.AF_INET, packet[16:20]),
        )
        udp = ihl
    elif version == 6 and len(packet) >= 40:
        if packet[6] != 17:
            return None
        saddr, daddr = (
            socket.inet_ntop(socket.AF_INET6, packet[8:24]),
            socket.inet_ntop(socket.AF_INET6, packet[24:40]),
        )
        udp = 40
    else:
        return None
    if len(packet) < udp + 8 + 12:
        return None
    sport, dport = struct.unpack_from(">HH", packet, udp)
    dns = udp + 8
    txid, flags, qdcount = struct.unpack_from(">HHH", packet, dns)
    if flags & 0x8000 or qdcount < 1:  # a response, or no question
        return None
    labels = []
    pos = dns + 12
    while pos < len(packet):
        n = packet[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0 or pos + 1 + n > len(packet):  # no compression in a question; truncated
            return None
        labels.append(packet[pos + 1 : pos + 1 + n].decode("ascii", errors="replace"))
        pos += 1 + n
    else:
        return None
    if pos + 4 > len(packet):
        return None
    qtype = struct.unpack_from(">H", packet, pos)[0]
    return {
        "qname": ".".join(labels),
        "qtype": qtype,
        "txid": txid,
        "family": "ipv6" if version == 6 else "ipv4",
        "saddr": saddr,
        "sport": sport,
        "daddr": daddr,
        "dport": dport,
    }


class DnsSource(EventSource):
    """Emits `dns` records (qname, qtype, addresses, pid or -1)."""

    name = "dns"

    def __init__(self, netns: str | None = None, interface: str | None = None) -> None:
        super().__init__()
        if netns is not None and not os.path.exists(netns):
            raise ValueError(f"dns netns {netns!r} does not exist")
        self.netns = netns
        self.interface = interface
        self._sock: socket.socket | None = None
        self._owners: dict[int, int] = {}
        self._owners_at = 0.0

    def requirements(self) -> list[str]:
        unmet = []
        if not has_capability(CAP_NET_RAW):
            unmet.append("a packet socket needs CAP_NET_RAW (run the agent as root)")
        if self.netns is not None and not has_capability(CAP_SYS_ADMIN):
            unmet.append("entering another network namespace needs CAP_SYS_ADMIN")
        return unmet

    def _open(self) -> None:
        if self.netns is None:
            self._sock = self._make_socket()
            return
        # setns() moves only the calling thread: create the socket in a helper thread that enters
        # the namespace; the socket stays in that namespace after the thread ends.
        result: list[socket.socket | BaseException] = []

        def make() -> None:
            try:
                assert self.netns is not None
                enter_netns(self.netns)
                result.append(self._make_socket())
            except BaseException as e:
                result.append(e)

        t = threading.Thread(target=make, name="vigil-dns-open", daemon=True)
        t.start()
        t.join(5)
        if not result:
            raise OSError(errno.ETIMEDOUT, f"opening the packet socket in {self.netns} timed out")
        if isinstance(result[0], BaseException):
            raise result[0]
        self._sock = result[0]

    def _make_socket(self) -> socket.socket:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        try:
            attach_filter(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            if self.interface:
                s.bind((self.interface, ETH_P_ALL))
        except BaseException:
            s.close()
            raise
        return s

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        if self.netns is not None:
            enter_netns(self.netns)  # so that /proc/thread-self/net shows the namespace's sockets
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(200):
                continue
            try:
                packet, addr = sock.recvfrom(65535)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EINTR):
                    continue
                if self._stop.is_set():
                    return
                raise
            if addr[2] != PACKET_OUTGOING:
                continue  # loopback shows each packet twice; keep the sending side
            self._received += 1
            query = parse_query(packet)
            if query is None:
                continue
            pid = self._pid_of(str(query["family"]), int(str(query["sport"])))
            self._emit({"type": "dns", "ts_ns": time.time_ns(), "pid": pid, **query})

    def _pid_of(self, family: str, sport: int) -> int:
        table = "udp6" if family == "ipv6" else "udp"
        inodes = [
            e.inode
            for e in read_table(f"/proc/thread-self/net/{table}", table)
            if e.lport == sport and e.inode
        ]
        if not inodes:
            return -1
        pid = self._owners.get(inodes[0])
        if pid is None and time.monotonic() - self._owners_at > 0.01:
            self._owners = inode_to_pid()
            self._owners_at = time.monotonic()
            pid = self._owners.get(inodes[0])
        return pid if pid is not None else -1
