"""Agent test fixtures: the TLS test server; for the sensor tests a private network namespace,
audit serialization and an event collector.

Audit state is global to the machine, so every test that touches it takes an exclusive file lock
(`AUDIT_LOCK`, shared with any other vigil test process on the machine) and checks afterwards that
no rule with its key remains.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.sensor_helpers import AUDIT_LOCK, Collector
from tests.agent.tls_server import LogSink, TLSServer, start_tls_server


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TLSServer]:
    server = start_tls_server(tmp_path, LogSink())
    yield server
    server.stop()


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
    """Serialize audit tests across processes."""
    with open(AUDIT_LOCK, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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
    owned = status.pid not in (0, os.getpid()) and os.path.exists(f"/proc/{status.pid}")
    if owned and not has_capability(CAP_AUDIT_READ):
        pytest.skip(
            f"audit daemon pid {status.pid} owns audit and the multicast group is unavailable "
            "(no CAP_AUDIT_READ)"
        )


@pytest.fixture
def collector() -> Collector:
    return Collector()
