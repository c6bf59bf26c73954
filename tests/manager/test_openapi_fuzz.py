"""Schemathesis over both OpenAPI documents: no generated request makes the manager answer 5xx.

Bounded: a few examples per operation, no deadline; the whole run takes well under two minutes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from vigil.manager.api.admin import create_endpoint, create_user
from vigil.manager.app import create_admin_app, create_endpoint_app
from vigil.manager.config import ManagerConfig
from vigil.manager.state import Manager

pytestmark = pytest.mark.slow
KEYS: dict[str, Any] = {}


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: Any, value: Any) -> dict[str, Any]:
    """Send generated NDJSON bodies as they are (strings) or one JSON value per line (anything else)."""
    if isinstance(value, bytes):
        return {"data": value}
    if isinstance(value, str):
        return {"data": value.encode("utf-8", "surrogatepass")}
    return {"data": json.dumps(value).encode() + b"\n"}


@schemathesis.serializer("application/yaml")
def _yaml(ctx: Any, value: Any) -> dict[str, Any]:
    """Sigma uploads: generated strings as they are, anything else as its JSON text (valid YAML)."""
    if isinstance(value, bytes):
        return {"data": value}
    if isinstance(value, str):
        return {"data": value.encode("utf-8", "surrogatepass")}
    return {"data": json.dumps(value).encode()}


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    data = Path(tmp_path_factory.mktemp("fuzz"))
    manager = Manager.open(
        ManagerConfig(data_dir=data, tls=False, max_body_bytes=256 * 1024, sync_full=False)
    )
    KEYS["admin"] = create_user(manager, "fuzzer")["key"]
    endpoint = create_endpoint(manager)
    KEYS["endpoint"] = {"X-Endpoint-Uuid": endpoint["uuid"], "X-Api-Key": endpoint["key"]}
    yield manager
    manager.close()


@pytest.fixture(scope="module")
def admin_schema(manager: Manager) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", create_admin_app(manager))


@pytest.fixture(scope="module")
def endpoint_schema(manager: Manager) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", create_endpoint_app(manager))


FUZZ = settings(
    max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
)


def _fuzz(schema: Any, headers: dict[str, str]) -> int:
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @FUZZ
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        run()
    return operations


def test_admin_api_has_no_server_error(admin_schema: Any) -> None:
    assert _fuzz(admin_schema, {"X-Api-Key": KEYS["admin"]}) == 45  # WHIDS' 42 + Sigma rules


def test_endpoint_api_has_no_server_error(endpoint_schema: Any) -> None:
    assert _fuzz(endpoint_schema, {**KEYS["endpoint"], "X-Endpoint-Hostname": "fuzz"}) == 18
