"""Fixtures for agent sensor tests: root gating, a private network namespace, audit serialization.

Audit state is global to the machine, so every test that touches it takes an exclusive file lock
(shared with any other vigil test process on the machine) and checks afterwards that no rule with
its key remains.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.tls_server import LogSink, TLSServer, start_tls_server

AUDIT_LOCK = "/run/vigil-audit-tests.lock"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: real kernel interfaces (CI runs as root)"
)


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace of our own with loopback up; deleted afterwards."""
    name = f"vigil-t-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def audit_lock() -> Iterator[None]:
    """Serialize audit tests across processes; skip only if audit is owned and unreadable."""
    with open(AUDIT_LOCK, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def audit_rules_with(key: str) -> list[str]:
    out = subprocess.run(["auditctl", "-l"], capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if key in line]


class Collector:
    """Thread-safe event list with a wait helper."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def find(self, pred: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if pred(e)]

    def wait_for(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 5.0, count: int = 1
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find(pred)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        return self.find(pred)


def eid(event: dict[str, Any]) -> int:
    return int(event["Event"]["System"]["EventID"])


def data(event: dict[str, Any]) -> dict[str, str]:
    return event["Event"]["EventData"]  # type: ignore[no-any-return]


PYTHON = sys.executable


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def audit_ready(audit_lock: None) -> None:
    """Audit tests run one at a time; they refuse (skip) only when they cannot read audit at all."""
    from vigil.agent.sources import _auditnl as nl
    from vigil.agent.sources.base import CAP_AUDIT_READ, has_capability

    if os.geteuid() != 0:
        pytest.skip("needs root: audit netlink (CI runs as root)")
    s = nl.open_socket()
    try:
        status = nl.get_status(s)
    finally:
        s.close()
    if (
        status.pid not in (0, os.getpid())
        and os.path.exists(f"/proc/{status.pid}")
        and not has_capability(CAP_AUDIT_READ)
    ):
        pytest.skip(
            f"audit daemon pid {status.pid} owns audit and the multicast group is unavailable "
            "(no CAP_AUDIT_READ)"
        )


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TLSServer]:
    """A real HTTPS server on loopback standing in for the manager's endpoint API."""
    server = start_tls_server(tmp_path, LogSink())
    yield server
    server.stop()
