"""DNS queries and their answers from an AF_PACKET socket (udp/53).

A classic BPF filter keeps only UDP packets from or to port 53 (IPv4 unfragmented, IPv6 without
extension headers), so the kernel does the sorting. A query is reported when its response arrives
(with the rcode and the answers) or after `response_timeout_s` without one. The sending process comes from the source port: the
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
_MAX_WAITING = 4096  # queries waiting for their response; the oldest is reported when full

# (code, jt, jf, k): accept UDP from or to port 53 over IPv4 (no fragments) or IPv6 (no extension
# headers); jumps are relative (target = next + offset). 18 accepts, 19 rejects.
_FILTER = [
    (0x20, 0, 0, 0xFFFFF000),  # 0: A = skb->protocol
    (0x15, 0, 9, 0x0800),  # 1: IPv4 ? 2 : 11
    (0x30, 0, 0, 9),  # 2: A = IP protocol
    (0x15, 0, 15, 17),  # 3: UDP ? 4 : reject
    (0x28, 0, 0, 6),  # 4: A = flags + fragment offset
    (0x45, 13, 0, 0x1FFF),  # 5: fragment ? reject : 6
    (0xB1, 0, 0, 0),  # 6: X = IHL * 4
    (0x48, 0, 0, 0),  # 7: A = UDP source port
    (0x15, 9, 0, 53),  # 8: 53 ? accept : 9
    (0x48, 0, 0, 2),  # 9: A = UDP destination port
    (0x15, 7, 8, 53),  # 10: 53 ? accept : reject
    (0x15, 0, 7, 0x86DD),  # 11: IPv6 ? 12 : reject
    (0x30, 0, 0, 6),  # 12: A = next header
    (0x15, 0, 5, 17),  # 13: UDP ? 14 : reject
    (0x28, 0, 0, 40),  # 14: A = UDP source port
    (0x15, 2, 0, 53),  # 15: 53 ? accept : 16
    (0x28, 0, 0, 42),  # 16: A = UDP destination port
    (0x15, 0, 1, 53),  # 17: 53 ? accept : reject
    (0x06, 0, 0, 0x40000),  # 18: accept (up to 256 KiB)
    (0x06, 0, 0, 0),  # 19: reject
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


def _ip_udp(packet: bytes) -> tuple[str, str, str, int] | None:
    """(family, saddr, daddr, offset of the UDP header) of an IPv4/IPv6 UDP packet."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20 and packet[9] == 17:
        ihl = (packet[0] & 0x0F) * 4
        return (
            "ipv4",
            socket.inet_ntop(socket.AF_INET, packet[12:16]),
            socket.inet_ntop(socket.AF_INET, packet[16:20]),
            ihl,
        )
    if version == 6 and len(packet) >= 40 and packet[6] == 17:
        return (
            "ipv6",
            socket.inet_ntop(socket.AF_INET6, packet[8:24]),
            socket.inet_ntop(socket.AF_INET6, packet[24:40]),
            40,
        )
    return None


def _read_name(packet: bytes, pos: int, start: int) -> tuple[str, int] | None:
    """A (possibly compressed) DNS name at `pos`; returns it and the position after it."""
    labels: list[str] = []
    end = None
    for _ in range(128):  # bounded: compression loops cannot hang us
        if pos >= len(packet):
            return None
        n = packet[pos]
        if n == 0:
            return ".".join(labels), (end if end is not None else pos + 1)
        if n & 0xC0 == 0xC0:
            if pos + 1 >= len(packet):
                return None
            if end is None:
                end = pos + 2
            pos = start + ((n & 0x3F) << 8 | packet[pos + 1])
            continue
        if n & 0xC0 or pos + 1 + n > len(packet):
            return None
        labels.append(packet[pos + 1 : pos + 1 + n].decode("ascii", errors="replace"))
        pos += 1 + n
    return None


def parse_dns(packet: bytes) -> dict[str, object] | None:
    """Addresses, ports, id, first question and (for responses) rcode and answers, else None."""
    ip = _ip_udp(packet)
    if ip is None:
        return None
    family, saddr, daddr, udp = ip
    if len(packet) < udp + 8 + 12:
        return None
    sport, dport = struct.unpack_from(">HH", packet, udp)
    dns = udp + 8
    txid, flags, qdcount, ancount = struct.unpack_from(">HHHH", packet, dns)
    if qdcount < 1:
        return None
    name = _read_name(packet, dns + 12, dns)
    if name is None or name[1] + 4 > len(packet):
        return None
    qname, pos = name
    qtype = struct.unpack_from(">H", packet, pos)[0]
    out: dict[str, object] = {
        "qname": qname,
        "qtype": qtype,
        "txid": txid,
        "family": family,
        "saddr": saddr,
        "sport": sport,
        "daddr": daddr,
        "dport": dport,
        "response": bool(flags & 0x8000),
    }
    if flags & 0x8000:
        out["rcode"] = flags & 0x0F
        out["answers"] = _answers(packet, pos + 4, dns, ancount)
    return out


def _answers(packet: bytes, pos: int, start: int, count: int) -> list[str]:
    """Sysmon-style QueryResults items: addresses as text, other types as `type: N name`."""
    results: list[str] = []
    for _ in range(min(count, 64)):
        name = _read_name(packet, pos, start)
        if name is None or name[1] + 10 > len(packet):
            break
        pos = name[1]
        rtype, _cls, _ttl, rdlen = struct.unpack_from(">HHIH", packet, pos)
        rdata = pos + 10
        if rdata + rdlen > len(packet):
            break
        if rtype == 1 and rdlen == 4:
            results.append(socket.inet_ntop(socket.AF_INET, packet[rdata : rdata + 4]))
        elif rtype == 28 and rdlen == 16:
            results.append(socket.inet_ntop(socket.AF_INET6, packet[rdata : rdata + 16]))
        elif rtype in (5, 12):
            target = _read_name(packet, rdata, start)
            if target is not None:
                results.append(f"type: {rtype} {target[0]}")
        pos = rdata + rdlen
    return results


def parse_query(packet: bytes) -> dict[str, object] | None:
    """The query in an IP packet (None for responses and anything else)."""
    parsed = parse_dns(packet)
    if parsed is None or parsed.pop("response"):
        return None
    return parsed


class DnsSource(EventSource):
    """Emits `dns` records (qname, qtype, addresses, pid or -1)."""

    name = "dns"

    def __init__(
        self, netns: str | None = None, interface: str | None = None, response_timeout_s: float = 1.0
    ) -> None:
        super().__init__()
        self.response_timeout_s = response_timeout_s
        self._waiting: dict[tuple[object, ...], tuple[float, dict[str, object]]] = {}
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
            s.setblocking(False)  # a read never waits: poll says when there is a packet
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
        poller.register(self._wakefd, select.POLLIN)
        while not self._stop.is_set():
            # without queries waiting for their answer there is nothing to time out: no wakeups
            if not poller.poll(100 if self._waiting else None):
                self._expire()
                continue
            if self._stop.is_set():  # woken by stop(): the socket may have nothing to read
                break
            try:
                packet, addr = sock.recvfrom(65535)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EINTR):
                    continue
                if self._stop.is_set():
                    return
                raise
            self._received += 1
            parsed = parse_dns(packet)
            if parsed is not None:
                self._packet(parsed, addr[2])
            self._expire()
        self._flush_waiting()  # stopping: report queries still waiting for an answer

    def _flush_waiting(self) -> None:
        while self._waiting:
            self._emit_query(self._waiting.pop(next(iter(self._waiting)))[1])

    def _packet(self, parsed: dict[str, object], pkttype: int) -> None:
        """Queries leave the host (OUTGOING); responses are taken where they arrive (HOST), so
        on loopback, where each packet shows up twice, both are counted once."""
        if not parsed.pop("response"):
            if pkttype != PACKET_OUTGOING or parsed["dport"] != 53:
                return
            pid = self._pid_of(str(parsed["family"]), int(str(parsed["sport"])))
            key = (parsed["txid"], parsed["sport"], parsed["qname"])
            if len(self._waiting) >= _MAX_WAITING:
                self._emit_query(self._waiting.pop(next(iter(self._waiting)))[1])
            self._waiting[key] = (
                time.monotonic() + self.response_timeout_s,
                {"ts_ns": time.time_ns(), "pid": pid, **parsed},
            )
            return
        if pkttype == PACKET_OUTGOING or parsed["sport"] != 53:
            return
        waiting = self._waiting.pop((parsed["txid"], parsed["dport"], parsed["qname"]), None)
        if waiting is not None:
            query = waiting[1]
            query["rcode"] = parsed.get("rcode")
            query["answers"] = parsed.get("answers", [])
            self._emit_query(query)

    def _emit_query(self, query: dict[str, object]) -> None:
        self._emit({"type": "dns", **query})

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, v in self._waiting.items() if v[0] <= now]:
            self._emit_query(self._waiting.pop(key)[1])  # no response: status unknown

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
