"""DNS queries (EventID 22) from a packet socket, with test traffic inside a namespace we create."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest
from tests.agent.sensor_helpers import needs_root

from vigil.agent.sensor import Sensor
from vigil.agent.sources.dns import DnsSource, parse_dns, parse_query

SERVER = """
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    if b"nx-" in data:
        s.sendto(data[:2] + b"\\x81\\x83" + data[4:], peer)   # NXDOMAIN
    else:   # one AAAA answer, name compressed to the question (offset 12)
        ans = b"\\xc0\\x0c" + struct.pack(">HHIH", 28, 1, 60, 16) + socket.inet_pton(socket.AF_INET6, "2001:db8::53")
        s.sendto(data[:2] + b"\\x81\\x80" + data[4:6] + b"\\x00\\x01" + data[8:] + ans, peer)
"""

CLIENT = """
import socket, struct, sys, time
name = sys.argv[1]
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0" + struct.pack(">HH", 28, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(q, ("127.0.0.1", 53))
s.recvfrom(2048)
time.sleep(0.3)     # keep the socket open a moment so the pid lookup can find it
"""


def netns_py(netns: str) -> list[str]:
    return ["ip", "netns", "exec", netns, sys.executable]


def _query_packet(name: str, qtype: int = 1, sport: int = 40000) -> bytes:
    dns = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0)
    dns += (
        b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", qtype, 1)
    )
    udp = struct.pack(">HHHH", sport, 53, 8 + len(dns), 0)
    ip = struct.pack(
        ">BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp) + len(dns),
        0,
        0,
        64,
        17,
        0,
        bytes([10, 0, 0, 1]),
        bytes([10, 0, 0, 2]),
    )
    return ip + udp + dns


def test_parse_query_reads_name_type_and_ports() -> None:
    q = parse_query(_query_packet("evil-c2.example.test", qtype=28, sport=50998))
    assert q == {
        "qname": "evil-c2.example.test",
        "qtype": 28,
        "txid": 7,
        "family": "ipv4",
        "saddr": "10.0.0.1",
        "sport": 50998,
        "daddr": "10.0.0.2",
        "dport": 53,
    }


def test_parse_query_ignores_responses_and_truncated_packets() -> None:
    pkt = bytearray(_query_packet("a.test"))
    pkt[28 + 2] |= 0x80  # QR bit: a response
    assert parse_query(bytes(pkt)) is None
    assert parse_query(_query_packet("a.test")[:35]) is None
    assert parse_query(b"") is None


def test_bad_netns_path_is_named() -> None:
    with pytest.raises(ValueError, match="/nonexistent/netns"):
        DnsSource(netns="/nonexistent/netns")


@needs_root
def test_dns_query_in_own_netns_gives_event_22_with_pid(netns: str, collector) -> None:  # type: ignore[no-untyped-def]
    server = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True
    )
    sensor = Sensor(
        sources=["dns"], exclude_pids=set(), source_options={"dns": {"netns": f"/run/netns/{netns}"}}
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        sensor.start(collector)
        assert sensor.status() == {"dns": None}
        client = subprocess.Popen([*netns_py(netns), "-c", CLIENT, "beacon.vigil-test.example"])
        assert client.wait(10) == 0
        nx = subprocess.Popen([*netns_py(netns), "-c", CLIENT, "nx-missing.vigil-test.example"])
        assert nx.wait(10) == 0
        found = collector.wait_for(
            lambda e: e["Event"]["EventData"].get("QueryName") == "beacon.vigil-test.example"
        )
        missing = collector.wait_for(
            lambda e: e["Event"]["EventData"].get("QueryName") == "nx-missing.vigil-test.example"
        )
    finally:
        sensor.stop()
        server.kill()
        server.wait()
        server.stdout.close()  # type: ignore[union-attr]
    assert len(found) == 1, "each query is reported once (loopback shows it twice)"
    event = found[0]["Event"]
    assert event["System"]["EventID"] == 22
    assert event["System"]["Channel"] == "Linux-Sysmon/Operational"
    d = event["EventData"]
    assert d["QueryType"] == "AAAA"
    assert d["QueryStatus"] == "0"
    assert d["QueryResults"] == "2001:db8::53;"
    assert d["DestinationIp"] == "127.0.0.1"
    assert d["DestinationPort"] == "53"
    assert d["ProcessId"] == str(client.pid)  # `ip netns exec` execs the client in place
    assert d["Image"] == os.path.realpath(sys.executable)
    assert len(missing) == 1
    m = missing[0]["Event"]["EventData"]
    assert (m["QueryStatus"], m["QueryResults"], m["ProcessId"]) == ("9003", "-", str(nx.pid))
    assert d["ProcessGuid"].startswith("{") and d["ProcessGuid"] != "{00000000-0000-0000-0000-000000000000}"


def test_parse_response_with_compressed_names_and_rcode() -> None:
    q = _query_packet("www.example.test", qtype=1)
    ip_len = 20
    dns = bytearray(q[ip_len + 8 :])
    dns[2:4] = b"\x81\x80"  # response, no error
    dns[6:8] = b"\x00\x02"  # two answers: a CNAME then an A
    cname = b"\xc0\x0c" + struct.pack(">HHIH", 5, 1, 60, 6) + b"\x03cdn\xc0\x10"
    a = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 7])
    body = bytes(dns) + cname + a
    udp = struct.pack(">HHHH", 53, 40000, 8 + len(body), 0)
    ip = struct.pack(
        ">BBHHHBBH4s4s", 0x45, 0, 28 + len(body), 0, 0, 64, 17, 0, bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1])
    )
    parsed = parse_dns(ip + udp + body)
    assert parsed is not None
    assert parsed["response"] is True and parsed["rcode"] == 0
    assert parsed["answers"] == ["type: 5 cdn.example.test", "192.0.2.7"]
    loop = bytearray(ip + udp + bytes(dns)[:12]) + b"\xc0\x0c"  # a name pointing at itself
    assert parse_dns(bytes(loop)) is None


@needs_root
def test_stop_returns_at_once_when_no_packet_comes(netns: str) -> None:
    """The stop wakeup must not leave the reader blocked in a read of the (quiet) packet socket."""
    import threading
    import time

    source = DnsSource(netns=f"/run/netns/{netns}")
    source.start(lambda event: None)
    try:
        time.sleep(0.2)  # the reader is waiting in poll
        assert [t for t in threading.enumerate() if t.name == "vigil-dns"]
    finally:
        started = time.monotonic()
        source.stop()
        took = time.monotonic() - started
    assert not [t for t in threading.enumerate() if t.name == "vigil-dns"]
    assert took < 1.0, f"stop took {took:.2f} s"
