"""The DNS scenario's safety check and its network-namespace path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vigil.engine import Engine
from vigil.rules import default_rules_path
from vigil.simulate import SCENARIOS, run_scenario
from vigil.simulate.scenarios import network

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"


def table(tmp_path: Path, name: str, local: str) -> str:
    path = tmp_path / name
    path.write_text(
        HEADER + f"  12: {local} 00000000:0000 07 00000000:00000000 00:00000000 00000000  0 0 1234 2 0 0\n"
    )
    return str(path)


@pytest.mark.parametrize(
    ("v4", "v6", "listening"),
    [
        ("00000000:0035", "00000000000000000000000000000000:1F90", True),  # 0.0.0.0:53
        ("0100007F:0035", "00000000000000000000000000000000:1F90", True),  # 127.0.0.1:53
        ("3500007F:0035", "00000000000000000000000000000000:1F90", False),  # 127.0.0.53:53 (resolved)
        ("0100007F:0036", "00000000000000000000000000000000:0035", True),  # [::]:53 takes v4 too
        ("0100007F:0036", "0000000000000000FFFF00000100007F:0035", True),  # ::ffff:127.0.0.1:53
        ("0A00000F:0035", "00000000000000000000000001000000:1F90", False),  # 10.0.0.15:53 only
    ],
)
def test_loopback_dns_listener(tmp_path: Path, v4: str, v6: str, listening: bool) -> None:
    tables = (
        (table(tmp_path, "udp", v4), network.UDP_TABLES[0][1]),
        (table(tmp_path, "udp6", v6), network.UDP_TABLES[1][1]),
    )
    assert network.loopback_dns_listener(tables) is listening


def test_unreadable_table_counts_as_a_listener(tmp_path: Path) -> None:
    assert network.loopback_dns_listener(((str(tmp_path / "missing"), frozenset()),)) is True


def test_dns_names_fit_dns_limits() -> None:
    for name in network.dns_names():
        assert len(name) <= 253 and all(0 < len(label) <= 63 for label in name.split("."))


@pytest.mark.skipif(os.geteuid() != 0, reason="creates a network namespace: needs root (CI runs as root)")
def test_dns_goes_into_a_private_namespace_when_a_resolver_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network, "loopback_dns_listener", lambda: True)
    result = run_scenario(SCENARIOS["dns"])
    assert result.status == "ran", result.message
    assert result.expected[0].data["Image"].endswith("/unshare")
    engine = Engine()
    engine.load_path(default_rules_path())
    fired = {n for e in result.expected for n in engine.match(e.to_event()).signature}
    assert set(SCENARIOS["dns"].rules) <= fired
