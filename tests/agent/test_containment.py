"""contain/uncontain inside network namespaces the test creates; the host ruleset is never touched.

Topology (all inside namespaces made here, addresses exist nowhere else):
``ep`` (the endpoint) --veth-- ``mgr`` (10.231.1.2, the manager) and --veth-- ``net``
(10.231.2.2, "the internet"). Each peer runs a tiny TCP server that answers "ok".
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vigil.agent.actions.errors import InvalidInput
from vigil.agent.containment import build_ruleset, contain, heartbeat, is_contained, parse_allowed, uncontain

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces")

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16); print("up", flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"ok"); c.close()
"""
CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5); print(c.recv(2).decode())
except OSError as e:
    print("fail", type(e).__name__)
"""


@dataclass
class Lab:
    ep: str
    mgr: str
    net: str
    servers: list[subprocess.Popen[str]] = field(default_factory=list)

    def run(self, ns: str, *argv: str) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=True
        ).stdout

    def serve(self, ns: str, addr: str, port: int) -> None:
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, addr, str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert p.stdout is not None and p.stdout.readline().strip() == "up"
        self.servers.append(p)

    def connect(self, ns: str, addr: str, port: int) -> str:
        return self.run(ns, sys.executable, "-c", CLIENT, addr, str(port)).strip()


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True)


def _host_ruleset() -> str:
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def lab() -> Iterator[Lab]:
    tag = uuid.uuid4().hex[:6]
    lab = Lab(ep=f"vgl-ep-{tag}", mgr=f"vgl-mgr-{tag}", net=f"vgl-net-{tag}")
    host_before = _host_ruleset()
    try:
        for ns in (lab.ep, lab.mgr, lab.net):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        for peer, octet in ((lab.mgr, 1), (lab.net, 2)):
            a, b = f"va{octet}{tag}", f"vb{octet}{tag}"
            _ip("link", "add", a, "netns", lab.ep, "type", "veth", "peer", "name", b, "netns", peer)
            _ip("-n", lab.ep, "addr", "add", f"10.231.{octet}.1/24", "dev", a)
            _ip("-n", peer, "addr", "add", f"10.231.{octet}.2/24", "dev", b)
            _ip("-n", lab.ep, "link", "set", a, "up")
            _ip("-n", peer, "link", "set", b, "up")
        lab.serve(lab.mgr, "10.231.1.2", 8443)
        lab.serve(lab.mgr, "10.231.1.2", 8080)
        lab.serve(lab.net, "10.231.2.2", 8080)
        lab.serve(lab.ep, "0.0.0.0", 2222)
        time.sleep(0.1)
        yield lab
    finally:
        for p in lab.servers:
            p.kill()
            p.wait()
            if p.stdout is not None:
                p.stdout.close()
        for ns in (lab.ep, lab.mgr, lab.net):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        assert _host_ruleset() == host_before, "the host ruleset must never change"


def test_contain_allows_only_the_manager_and_uncontain_restores(lab: Lab) -> None:
    host_before = _host_ruleset()
    assert lab.connect(lab.ep, "10.231.1.2", 8443) == "ok"
    assert lab.connect(lab.ep, "10.231.2.2", 8080) == "ok"
    assert lab.connect(lab.net, "10.231.2.1", 2222) == "ok"

    contain(["10.231.1.2:8443"], netns=lab.ep)
    assert is_contained(netns=lab.ep)
    assert lab.connect(lab.ep, "10.231.1.2", 8443) == "ok"
    assert lab.connect(lab.ep, "10.231.1.2", 8080).startswith("fail")
    assert lab.connect(lab.ep, "10.231.2.2", 8080).startswith("fail")
    assert lab.connect(lab.net, "10.231.2.1", 2222).startswith("fail"), "inbound from the internet is dropped"
    assert lab.connect(lab.ep, "127.0.0.1", 2222) == "ok", "loopback still works"
    assert _host_ruleset() == host_before

    assert uncontain(netns=lab.ep) is True
    assert not is_contained(netns=lab.ep)
    assert lab.connect(lab.ep, "10.231.2.2", 8080) == "ok"
    assert lab.connect(lab.net, "10.231.2.1", 2222) == "ok"
    assert uncontain(netns=lab.ep) is False, "uncontain is idempotent"
    assert _host_ruleset() == host_before


def test_address_entry_allows_both_directions_and_contain_is_idempotent(lab: Lab) -> None:
    contain(["10.231.1.2"], netns=lab.ep)
    contain(["10.231.1.2"], netns=lab.ep)  # re-applying replaces, never duplicates
    assert lab.connect(lab.ep, "10.231.1.2", 8080) == "ok"
    assert lab.connect(lab.mgr, "10.231.1.1", 2222) == "ok"
    assert lab.connect(lab.ep, "10.231.2.2", 8080).startswith("fail")
    listing = lab.run(lab.ep, "nft", "list", "ruleset")
    assert listing.count("table inet vigil_isolation") == 1


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _deadman_pid(hb: Path) -> int:
    return int(Path(str(hb) + ".deadman").read_text())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_deadman_lifts_containment_without_heartbeat(lab: Lab, tmp_path: Path) -> None:
    hb = tmp_path / "heartbeat"
    contain(["10.231.1.2"], netns=lab.ep, deadman=hb, deadman_seconds=2)
    pid = _deadman_pid(hb)
    try:
        for _ in range(8):  # 4 s of heartbeats: still contained
            heartbeat(hb)
            time.sleep(0.5)
        assert is_contained(netns=lab.ep)
        assert _wait(lambda: not is_contained(netns=lab.ep), 10), "no heartbeat: containment lifted"
        assert lab.connect(lab.ep, "10.231.2.2", 8080) == "ok"
        assert _wait(lambda: not _alive(pid), 5)
    finally:
        if _alive(pid):
            os.kill(pid, 9)


def test_uncontain_stops_the_deadman(lab: Lab, tmp_path: Path) -> None:
    hb = tmp_path / "heartbeat"
    contain(["10.231.1.2"], netns=lab.ep, deadman=hb, deadman_seconds=60)
    pid = _deadman_pid(hb)
    try:
        assert _alive(pid)
        uncontain(netns=lab.ep)
        assert _wait(lambda: not _alive(pid), 20)
    finally:
        if _alive(pid):
            os.kill(pid, 9)


def test_bad_address_is_rejected_before_anything_is_applied(lab: Lab) -> None:
    with pytest.raises(InvalidInput, match=r"allowed\[1\]: 'manager.example' is not an IP"):
        contain(["10.231.1.2", "manager.example"], netns=lab.ep)
    assert not is_contained(netns=lab.ep)
    assert lab.connect(lab.ep, "10.231.2.2", 8080) == "ok"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["10.0.0.1:99999"], r"allowed\[0\].*out of range"),
        (["10.0.0.1/8"], r"allowed\[0\].*host bits"),
        (["10.0.0.1; flush ruleset"], r"allowed\[0\]"),
        ("10.0.0.1", "expected a list"),
    ],
)
def test_parse_allowed_errors(items, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_allowed(items)


def test_bad_netns_name_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="network namespace name"):
        contain(["10.0.0.1"], netns="../x; rm")


def test_ruleset_shape() -> None:
    rs = build_ruleset(parse_allowed(["10.231.1.2:8443", "fd00::1"]))
    assert "policy drop" in rs and "iif lo accept" in rs and "ct state established,related accept" in rs
    assert "ip daddr 10.231.1.2 tcp dport 8443 accept" in rs
    assert "ip6 saddr fd00::1 accept" in rs and "ip6 daddr fd00::1 accept" in rs
