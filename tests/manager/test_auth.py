"""Every route of both apps refuses a missing key, a wrong key, and the other API's key."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.routing import Route, WebSocketRoute
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from vigil.manager.app import PUBLIC_PATHS, create_admin_app, create_endpoint_app, iter_routes
from vigil.manager.testing import LiveManager

PARAMS = {
    "uuid": None,  # filled with the live endpoint's uuid
    "os": "windows",
    "pguid": "515cd0d1-c09c-615c-6886-000000008b00",
    "ehash": "107115af9a7ae294b66499d9f24b4da40840f8dc",
    "fname": "dump.bin",
    "field": "stdout",
}


def _routes(app: object) -> list[tuple[str, str]]:
    out = []
    for route in iter_routes(app):
        if isinstance(route, Route) and route.path not in PUBLIC_PATHS:
            out.extend((m, route.path) for m in sorted(route.methods or ()) if m != "HEAD")
    return out


def _fill(path: str, uuid: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)] or uuid, path)


def _http_cases(live: LiveManager) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    return _routes(create_admin_app(live.manager)), _routes(create_endpoint_app(live.manager))


def test_every_admin_route_refuses_bad_keys(live: LiveManager) -> None:
    admin_routes, _ = _http_cases(live)
    # the 42 HTTP operations of WHIDS §2 and vigil's Sigma rules (GET, POST, DELETE /rules/sigma)
    assert len(admin_routes) == 45, admin_routes
    assert {("GET", "/rules/sigma"), ("POST", "/rules/sigma"), ("DELETE", "/rules/sigma")} <= set(
        admin_routes
    )
    endpoint_headers = {"X-Endpoint-Uuid": live.endpoint_uuid, "X-Api-Key": live.endpoint_key}
    refused = []
    with httpx.Client(base_url=live.admin_url, verify=live.ssl_context) as client:
        for method, path in admin_routes:
            url = _fill(path, live.endpoint_uuid)
            for headers in ({}, {"X-Api-Key": "0" * 64}, {"X-Api-Key": ""}, endpoint_headers):
                response = client.request(method, url, headers=headers, params={"identifier": "x"})
                if response.status_code == 403 and response.json()["message"] == "NOK":
                    refused.append((method, path))
                else:
                    pytest.fail(
                        f"{method} {path} with {headers}: {response.status_code} {response.text[:200]}"
                    )
    assert len(refused) == 4 * len(admin_routes)


def test_every_endpoint_route_refuses_bad_keys(live: LiveManager) -> None:
    _, endpoint_routes = _http_cases(live)
    # the 16 operations of WHIDS §3 and the Sigma rule set agents sync (/rules/sigma[/sha256])
    assert len(endpoint_routes) == 18, endpoint_routes
    assert {("GET", "/rules/sigma"), ("GET", "/rules/sigma/sha256")} <= set(endpoint_routes)
    admin_user = live.manager.store.user_by_key_hash(
        __import__("hashlib").sha256(live.admin_key.encode()).hexdigest()
    )
    assert admin_user is not None
    cases = [
        {},
        {"X-Endpoint-Uuid": live.endpoint_uuid},
        {"X-Endpoint-Uuid": live.endpoint_uuid, "X-Api-Key": "f" * 64},
        {"X-Endpoint-Uuid": live.endpoint_uuid, "X-Api-Key": live.admin_key},
        {"X-Endpoint-Uuid": admin_user["uuid"], "X-Api-Key": live.admin_key},
        {"X-Api-Key": live.endpoint_key},
    ]
    with httpx.Client(base_url=live.endpoint_url, verify=live.ssl_context) as client:
        for method, path in endpoint_routes:
            for headers in cases:
                response = client.request(
                    method, path, headers={**headers, "X-Endpoint-Hostname": "agent-host"}
                )
                assert response.status_code == 403, f"{method} {path} with {headers}: {response.status_code}"


@pytest.mark.parametrize("path", ["/stream/events", "/stream/detections"])
def test_streams_refuse_bad_keys(live: LiveManager, path: str) -> None:
    routes = [r.path for r in iter_routes(create_admin_app(live.manager)) if isinstance(r, WebSocketRoute)]
    assert sorted(routes) == ["/stream/detections", "/stream/events"]
    uri = live.admin_url.replace("https", "wss") + path
    for headers in ({}, {"X-Api-Key": "0" * 64}, {"X-Api-Key": live.endpoint_key}):
        with pytest.raises(InvalidStatus) as err:
            connect(uri, ssl=live.ssl_context, additional_headers=headers, open_timeout=5)  # type: ignore[arg-type]
        assert err.value.response.status_code == 403
    # pywhids sends Api-Key instead of X-Api-Key; the same admin key opens the stream.
    with connect(uri, ssl=live.ssl_context, additional_headers={"Api-Key": live.admin_key}) as ws:  # type: ignore[arg-type]
        assert ws.protocol.state.name == "OPEN"


def test_keys_are_stored_hashed(live: LiveManager) -> None:
    import sqlite3

    conn = sqlite3.connect(live.config.db_path)
    try:
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    assert live.admin_key not in dump and live.endpoint_key not in dump
    assert __import__("hashlib").sha256(live.endpoint_key.encode()).hexdigest() in dump
