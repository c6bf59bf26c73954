"""Tunnels, uploads, DNS and cloud metadata: loopback only, or inside a network namespace we create."""

from __future__ import annotations

import os
import secrets

from vigil.simulate.registry import scenario
from vigil.simulate.sandbox import Sandbox, ScenarioSkipped
from vigil.simulate.scenarios._util import have, python

#: Sends one DNS query per name to 127.0.0.1:53, where nothing listens (checked first, or inside a
#: fresh network namespace), so nothing answers and nothing is forwarded. argv[1] == "netns": bring
#: the namespace's lo up first.
DNS_SCRIPT = """\
import fcntl, socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if sys.argv[1] == "netns":
    fcntl.ioctl(s, 0x8914, struct.pack("16sH22x", b"lo", 0x1 | 0x8 | 0x40))
s.settimeout(0.3)
for i, name in enumerate(sys.argv[2:]):
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0"
    s.sendto(struct.pack(">6H", i, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1), ("127.0.0.1", 53))
    try:
        s.recv(512)
    except OSError:
        pass
time.sleep(0.5)
"""


UDP_TABLES = (
    ("/proc/net/udp", frozenset({"00000000", "0100007F"})),
    ("/proc/net/udp6", frozenset({"0" * 32})),
)


def loopback_dns_listener(tables: tuple[tuple[str, frozenset[str]], ...] = UDP_TABLES) -> bool:
    """Whether a UDP socket here could receive 127.0.0.1:53 (a local resolver that might forward)."""
    for table, covering in tables:
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            return True  # cannot tell: assume there is one
        for row in rows:
            address, _, port = row.split()[1].partition(":")
            if int(port, 16) == 53 and (address in covering or address.endswith("0100007F")):
                return True
    return False


def dns_names() -> list[str]:
    """A long, many-label, random-looking name, a mining-pool-like name and a tunnel-service name."""
    labels = [
        secrets.token_hex(26),
        secrets.token_hex(16),
        "a1",
        "b2",
        "c3",
        "d4",
        "e5",
        "f6",
        "vigil-sim",
        "invalid",
    ]
    return [".".join(labels), "xmr.vigil-sim.invalid", "vigil-sim.ngrok-free.app"]


@scenario(
    "tunnels-exfil",
    "ssh -N -R (a reverse tunnel) and curl -F file=@... (an upload) aimed at a closed loopback port; "
    "both fail at once.",
    ["SshReverseOrDynamicTunnel", "CommandLineFileUpload"],
)
def tunnels_exfil(sb: Sandbox) -> None:
    port = sb.closed_port()
    if have("ssh"):
        sb.run(
            [
                "ssh",
                "-F",
                "/dev/null",
                "-N",
                "-R",
                "9999:127.0.0.1:22",
                "-p",
                str(port),
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=2",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "vigil-sim@127.0.0.1",
            ]
        )
    else:
        sb.skip_rules(["SshReverseOrDynamicTunnel"], "ssh is not installed")
    upload = sb.write_file(sb.path("upload.txt"), "vigil-sim\n")
    if have("curl"):
        sb.run(["curl", "-s", "-m", "2", "-F", f"file=@{upload}", f"http://127.0.0.1:{port}/"])
    else:
        sb.skip_rules(["CommandLineFileUpload"], "curl is not installed")


@scenario(
    "dns",
    "DNS queries for a 120-character, 10-label, random-looking name, a mining-pool-like name and a "
    "tunnel-service name, sent to 127.0.0.1:53 where nothing listens. If a local resolver listens "
    "there (it could forward them), they go inside a new, empty network namespace instead (root), "
    "where only a DNS sensor watching that namespace sees them.",
    [
        "DnsLongQueryName",
        "DnsLongLabel",
        "DnsManyLabels",
        "DnsHighEntropyLabel",
        "DnsMiningPool",
        "DnsSuspiciousServiceDomain",
    ],
)
def dns(sb: Sandbox) -> None:
    names = dns_names()
    py = python()
    if not loopback_dns_listener():
        sb.run([py, "-c", DNS_SCRIPT, "host", *names])
    elif os.geteuid() != 0 or not have("unshare"):
        raise ScenarioSkipped(
            "a DNS server listens on 127.0.0.1:53 and a private namespace needs root and unshare"
        )
    else:
        inner = [py, "-c", DNS_SCRIPT, "netns", *names]
        done = sb.run(["unshare", "--net", "--", *inner], children=[(py, " ".join(inner))])
        if done.returncode != 0:
            raise ScenarioSkipped(
                f"could not query inside a new network namespace: {done.stderr.strip()[-200:]}"
            )
    for name in names:
        sb.expect_dns(py, name)


@scenario(
    "cloud-metadata",
    "A request to the cloud metadata address 169.254.169.254 (curl, or Python when curl is missing) "
    "inside a new, empty network namespace (root): there is no route, so it fails at once.",
    ["CloudMetadataQuery"],
    needs_root=True,
)
def cloud_metadata(sb: Sandbox) -> None:
    if not have("unshare"):
        raise ScenarioSkipped("unshare (util-linux) is not installed")
    url = "http://169.254.169.254/latest/meta-data/"
    if have("curl"):
        inner = ["curl", "-s", "-m", "2", url]
    else:
        inner = [
            python(),
            "-c",
            f"import urllib.request as u\ntry: u.urlopen({url!r}, timeout=2)\nexcept OSError: pass",
        ]
    sb.run(["unshare", "--net", "--", *inner], children=[(inner[0], " ".join(inner))])
