"""Socket inventory from /proc/net with owning pids, inside a namespace we create."""

from __future__ import annotations

import subprocess
import sys

from tests.agent.sensor_helpers import needs_root

from vigil.agent.sources.netinv import NetInventorySource, _addr, inode_to_pid, read_sockets
from vigil.agent.sources.registry import requirements_report

LISTEN = """
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 18443)); s.listen(1)
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.bind(("::1", 18053))
print("ready", flush=True); time.sleep(30)
"""


def test_addresses_decode_in_host_order() -> None:
    assert _addr("0100007F:1F90") == ("127.0.0.1", 8080)
    assert _addr("00000000000000000000000001000000:0035") == ("::1", 53)


@needs_root
def test_inventory_names_sockets_and_pids_in_own_netns(netns: str) -> None:
    server = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", LISTEN], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        entries = read_sockets(f"/proc/{server.pid}/net")
        tcp = [e for e in entries if e.proto == "tcp" and e.lport == 18443]
        udp6 = [e for e in entries if e.proto == "udp6" and e.lport == 18053]
        assert len(tcp) == 1 and tcp[0].state == "LISTEN" and tcp[0].laddr == "127.0.0.1"
        assert len(udp6) == 1 and udp6[0].laddr == "::1"
        owners = inode_to_pid()
        assert owners[tcp[0].inode] == server.pid and owners[udp6[0].inode] == server.pid
        records: list[dict] = []  # type: ignore[type-arg]
        src = NetInventorySource()
        src._sink = records.append
        src.poll_once()  # the host namespace: our server's sockets are not there
        assert not [r for r in records if r["lport"] in (18443, 18053)]
    finally:
        server.kill()
        server.wait()
        server.stdout.close()  # type: ignore[union-attr]


def test_requirements_report_covers_every_source() -> None:
    report = requirements_report()
    assert set(report) == {"proc_connector", "audit", "fanotify_exec", "netinv", "dns", "files", "procpoll"}
    assert report["files"] == ["no paths to watch (set watch_paths)"]
    assert all(isinstance(v, list) for v in report.values())
