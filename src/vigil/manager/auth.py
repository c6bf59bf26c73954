"""Authentication of both APIs.

Admin API: ``X-Api-Key`` must be the key of an admin user. Endpoint API: ``X-Endpoint-Uuid`` and
``X-Api-Key`` must be an enrolled endpoint and its key; the first ``X-Endpoint-Hostname`` seen is
pinned and another hostname with the same credentials is refused. The two key spaces are disjoint
tables, so an admin key never opens the endpoint API and an endpoint key never opens the admin API.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request, WebSocket
from starlette.concurrency import run_in_threadpool

from vigil.manager.console.router import ConsoleForbidden, console_user
from vigil.manager.errors import Forbidden, Unauthorized
from vigil.manager.keys import hash_key, keys_match
from vigil.manager.state import Manager
from vigil.manager.times import now_ns

__all__ = ["check_endpoint", "require_admin", "require_endpoint"]

logger = logging.getLogger(__name__)


def _manager(conn: Request | WebSocket) -> Manager:
    manager: Manager = conn.app.state.manager
    return manager


def admin_user(conn: Request | WebSocket, accept_api_key_header: bool = False) -> dict[str, Any]:
    """The admin user whose key is in ``X-Api-Key``. Streams also accept ``Api-Key``, which is what
    pywhids' stream clients send."""
    key = conn.headers.get("x-api-key")
    if not key and accept_api_key_header:
        key = conn.headers.get("api-key")
    if not key:
        # The web console authenticates with a session cookie instead (CSRF- and origin-checked).
        try:
            session_user = console_user(conn)
        except ConsoleForbidden as exc:
            raise Forbidden(str(exc)) from exc
        if session_user is not None:
            return session_user
        raise Unauthorized("Not Authorized: missing X-Api-Key")
    user = _manager(conn).store.user_by_key_hash(hash_key(key))
    if user is None:
        raise Unauthorized("Not Authorized")
    return user


def require_admin(request: Request) -> dict[str, Any]:
    """FastAPI dependency for every admin route."""
    return admin_user(request)


def check_endpoint(manager: Manager, uuid: str, key: str) -> dict[str, Any] | None:
    """The endpoint row if ``uuid``/``key`` are an enrolled endpoint and its key, else None."""
    if not uuid or not key:
        return None
    endpoint = manager.store.get_endpoint(uuid.lower())
    if endpoint is None or not keys_match(key, endpoint["key_hash"]):
        return None
    return endpoint


async def require_endpoint(request: Request) -> dict[str, Any]:
    """FastAPI dependency for every endpoint route; returns the endpoint row.

    Runs on the event loop: the lookup is one primary-key read (tens of microseconds), cheaper than
    a hop to the thread pool on every agent poll. Only the first-contact hostname pin writes, and
    that goes to a worker thread.
    """
    uuid = (request.headers.get("x-endpoint-uuid") or "").lower()
    key = request.headers.get("x-api-key") or ""
    if not uuid or not key:
        raise Unauthorized("Not Authorized: missing X-Endpoint-Uuid or X-Api-Key")
    manager = _manager(request)
    endpoint = check_endpoint(manager, uuid, key)
    if endpoint is None:
        raise Unauthorized("Not Authorized")
    hostname = request.headers.get("x-endpoint-hostname") or ""
    if hostname:
        pinned = endpoint["hostname"] or await run_in_threadpool(manager.store.pin_hostname, uuid, hostname)
        if pinned != hostname:
            logger.warning("endpoint %s: hostname %r does not match pinned %r", uuid, hostname, pinned)
            raise Forbidden("two hosts are using the same credentials")
        endpoint["hostname"] = pinned
    ip = request.headers.get("x-endpoint-ip") or (request.client.host if request.client else "")
    manager.store.touch_endpoint(uuid, ip, now_ns())
    endpoint["ip"] = ip
    return endpoint
