"""The agent-poll fast path answers only the trivial cases and hands everything else to the routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vigil.manager.api.admin import build_command, create_endpoint
from vigil.manager.api.fastpath import EndpointFastPath
from vigil.manager.config import ManagerConfig
from vigil.manager.state import Manager


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Manager]:
    manager = Manager.open(
        ManagerConfig(data_dir=tmp_path, server_key="sk", ingest_workers=0, sync_full=False)
    )
    yield manager
    manager.close()


def scope(path: str, uuid: str, key: str, hostname: str = "h", method: str = "GET") -> dict[str, Any]:
    headers = [(b"x-endpoint-uuid", uuid.encode()), (b"x-api-key", key.encode())]
    if hostname:
        headers.append((b"x-endpoint-hostname", hostname.encode()))
    return {"type": "http", "method": method, "path": path, "headers": headers, "client": ("127.0.0.1", 5)}


def test_trivial_polls_are_answered(manager: Manager) -> None:
    endpoint = create_endpoint(manager)
    uuid, key = endpoint["uuid"], endpoint["key"]
    fast = EndpointFastPath(None, manager)  # type: ignore[arg-type]
    assert fast._answer(scope("/key", uuid, key)) is None, "first contact pins the hostname: route"
    manager.store.pin_hostname(uuid, "h")
    assert fast._answer(scope("/key", uuid, key)) == (200, b"sk")
    assert fast._answer(scope("/commands", uuid, key)) == (204, b"")
    assert fast._answer(scope("/rules/sha256", uuid, key)) == (200, manager.rules.sha256.encode())
    assert fast._answer(scope("/iocs/sha256", uuid, key, hostname="")) == (200, manager.iocs.sha256.encode())
    assert manager.store.get_endpoint(uuid)["last_connection"] > 0  # type: ignore[index]


def test_everything_else_falls_through(manager: Manager) -> None:
    endpoint = create_endpoint(manager)
    uuid, key = endpoint["uuid"], endpoint["key"]
    manager.store.pin_hostname(uuid, "h")
    fast = EndpointFastPath(None, manager)  # type: ignore[arg-type]
    assert fast._answer(scope("/key", uuid, "0" * 64)) is None, "wrong key"
    assert fast._answer(scope("/key", uuid, key, hostname="other")) is None, "hostname mismatch"
    assert fast._answer(scope("/key", "", "")) is None, "no credentials"
    manager.store.update_endpoint(uuid, {"command": build_command(manager, {"command-line": "ls"})})
    assert fast._answer(scope("/commands", uuid, key)) is None, "a pending command is handed out by the route"
