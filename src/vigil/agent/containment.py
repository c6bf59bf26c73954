"""Host isolation: one nftables table that drops everything except loopback, established flows
and the manager; ``uncontain`` deletes the table.

The ruleset is written by code from validated addresses (``ipaddress``) and fed to ``nft -f -``
on stdin, never through a shell. Apply and release are atomic nft transactions. ``netns`` runs
nft inside a named network namespace (``ip netns exec``), which is how the tests isolate a
namespace they created without touching the host firewall.

Allowed entries: ``ADDR``, ``ADDR/PREFIX`` (both directions, any protocol) and ``ADDR:PORT`` /
``[V6ADDR]:PORT`` (outbound TCP to that port). Names are not accepted: once contained there is
no DNS, so the caller resolves the manager first.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vigil.agent.actions.errors import ActionError, ActionUnavailable, InvalidInput

logger = logging.getLogger(__name__)

TABLE = "vigil_isolation"
FAMILY = "inet"
_NETNS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PORTED = re.compile(r"^\[?(?P<addr>[0-9A-Fa-f:.]+?)\]?:(?P<port>\d{1,5})$")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_DEADMEN: list[subprocess.Popen[bytes]] = []


@atexit.register
def _reap_deadmen() -> None:
    """Collect dead-man switches that already exited, so none is left a zombie at exit."""
    for child in _DEADMEN:
        child.poll()


@dataclass(frozen=True, slots=True)
class Allowed:
    """One allowed peer: a network (a single address is a /32 or /128) and an optional TCP port."""

    network: IPNetwork
    port: int | None = None

    def match(self, direction: str) -> str:
        proto = "ip" if self.network.version == 4 else "ip6"
        net = str(self.network.network_address) if self.network.num_addresses == 1 else str(self.network)
        rule = f"{proto} {direction} {net}"
        return rule + (f" tcp dport {self.port}" if self.port is not None and direction == "daddr" else "")


def parse_allowed(items: Sequence[str], *, where: str = "allowed") -> list[Allowed]:
    """Validate every entry; InvalidInput names the first bad one with its index."""
    if isinstance(items, str):
        raise InvalidInput(f"{where}: expected a list of addresses, got a string {items!r}", action="contain")
    out = []
    for i, raw in enumerate(items):
        item = str(raw).strip()
        try:
            m = _PORTED.match(item) if item.count(":") == 1 or item.startswith("[") else None
            if m:
                port = int(m.group("port"))
                if not 0 < port < 65536:
                    raise ValueError(f"port {port} out of range")
                out.append(Allowed(ipaddress.ip_network(m.group("addr"), strict=True), port))
            else:
                out.append(Allowed(ipaddress.ip_network(item, strict=True)))
        except ValueError as exc:
            raise InvalidInput(
                f"{where}[{i}]: {raw!r} is not an IP address, network or ADDR:PORT ({exc})",
                action="contain",
                target=raw,
            ) from exc
    return out


def build_ruleset(allowed: Sequence[Allowed]) -> str:
    """The nft script: recreate the table atomically with drop policies and the allowlist."""
    nd = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept"
    lines = [
        f"table {FAMILY} {TABLE}",
        f"delete table {FAMILY} {TABLE}",
        f"table {FAMILY} {TABLE} {{",
        "  chain input {",
        "    type filter hook input priority -10; policy drop;",
        "    iif lo accept",
        "    ct state established,related accept",
        f"    {nd}",
    ]
    lines += [f"    {a.match('saddr')} accept" for a in allowed if a.port is None]
    lines += [
        "  }",
        "  chain output {",
        "    type filter hook output priority -10; policy drop;",
        "    oif lo accept",
        "    ct state established,related accept",
        f"    {nd}",
    ]
    lines += [f"    {a.match('daddr')} accept" for a in allowed]
    lines += [
        "    counter reject with icmpx type admin-prohibited",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _nft_argv(args: Sequence[str], netns: str | None) -> list[str]:
    nft = shutil.which("nft")
    if nft is None:
        raise ActionUnavailable("nft not found: install the nftables package", action="contain")
    if netns is None:
        return [nft, *args]
    if not _NETNS.match(netns):
        raise InvalidInput(f"netns: invalid network namespace name {netns!r}", action="contain", target=netns)
    ip = shutil.which("ip")
    if ip is None:
        raise ActionUnavailable("ip not found: install the iproute2 package", action="contain")
    return [ip, "netns", "exec", netns, nft, *args]


def _run_nft(
    args: Sequence[str], netns: str | None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = _nft_argv(args, netns)
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ActionError(f"running {argv[0]} failed: {exc}", action="contain") from exc


def contain(
    allowed: Sequence[str],
    *,
    netns: str | None = None,
    deadman: str | os.PathLike[str] | None = None,
    deadman_seconds: float = 600.0,
) -> str:
    """Isolate the host (or ``netns``); returns the ruleset applied. Raises InvalidInput/ActionError.

    With ``deadman`` (a heartbeat file path), a detached process lifts the isolation when the
    file is not touched (``heartbeat()``) for ``deadman_seconds``: a dead agent cannot leave the
    host cut off from its manager for good.
    """
    ruleset = build_ruleset(parse_allowed(allowed))
    if deadman is not None and not deadman_seconds > 0:
        raise InvalidInput(f"deadman_seconds must be positive, got {deadman_seconds!r}", action="contain")
    proc = _run_nft(["-f", "-"], netns, stdin=ruleset)
    if proc.returncode != 0:
        raise ActionError(f"nft refused the isolation ruleset: {proc.stderr.strip()}", action="contain")
    logger.warning("host contained; allowed: %s (netns %s)", list(allowed), netns or "host")
    if deadman is not None:
        _start_deadman(os.fspath(deadman), deadman_seconds, netns)
    return ruleset


def heartbeat(path: str | os.PathLike[str]) -> None:
    """Prove the agent is alive to the dead-man switch (touch the heartbeat file)."""
    p = Path(path)
    p.touch()
    os.utime(p)


def _start_deadman(path: str, seconds: float, netns: str | None) -> int:
    heartbeat(path)
    settings = json.dumps({"heartbeat": path, "seconds": seconds, "netns": netns})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    child = subprocess.Popen(
        [sys.executable, "-m", "vigil.agent._deadman", settings],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    Path(path + ".deadman").write_text(f"{child.pid}\n")  # an older dead man sees this and exits
    _DEADMEN[:] = [p for p in _DEADMEN if p.poll() is None] + [child]  # reap the ones that exited
    logger.info("containment dead-man switch pid %s: %ss without heartbeat lifts it", child.pid, seconds)
    return child.pid


def uncontain(*, netns: str | None = None) -> bool:
    """Remove the isolation table; True when it was present."""
    was = is_contained(netns=netns)
    script = f"table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n"
    proc = _run_nft(["-f", "-"], netns, stdin=script)
    if proc.returncode != 0:
        raise ActionError(
            f"nft could not remove the isolation table: {proc.stderr.strip()}", action="uncontain"
        )
    logger.warning("host uncontained (netns %s)", netns or "host")
    return was


def is_contained(*, netns: str | None = None) -> bool:
    """True when the isolation table exists."""
    return _run_nft(["list", "table", FAMILY, TABLE], netns).returncode == 0
