"""A shortcut for the agent polls that dominate the endpoint API's traffic.

Thousands of agents call ``GET /commands`` every few seconds and almost always get 204. This ASGI
middleware answers those polls (and ``/key``, ``/rules/sha256``, ``/iocs/sha256``) without the
framework's routing and dependency machinery, with exactly the same checks: a known endpoint, its
key, the pinned hostname. Anything else (a pending command, a first contact that pins the hostname,
any refusal) falls through to the regular route, which owns the full behaviour and error format.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from vigil.manager.auth import check_endpoint
from vigil.manager.state import Manager
from vigil.manager.times import now_ns

__all__ = ["EndpointFastPath"]

_PATHS = frozenset({"/commands", "/key", "/rules/sha256", "/iocs/sha256"})


class EndpointFastPath:
    def __init__(self, app: ASGIApp, manager: Manager) -> None:
        self.app = app
        self.manager = manager

    def _answer(self, scope: Scope) -> tuple[int, bytes] | None:
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers") or ():
            headers[name] = value
        endpoint = check_endpoint(
            self.manager,
            headers.get(b"x-endpoint-uuid", b"").decode("latin-1"),
            headers.get(b"x-api-key", b"").decode("latin-1"),
        )
        if endpoint is None:
            return None
        hostname = headers.get(b"x-endpoint-hostname", b"").decode("latin-1")
        if hostname and endpoint["hostname"] != hostname:
            return None  # first contact (pins) or a mismatch (403): the regular route decides
        path = scope["path"]
        if path == "/commands":
            command: dict[str, Any] | None = endpoint.get("command")
            if command is not None and not command.get("sent"):
                return None  # handing out a command writes: regular route
            body = b""
        elif path == "/key":
            body = self.manager.config.server_key.encode()
        elif path == "/rules/sha256":
            body = self.manager.rules.sha256.encode()
        else:
            body = self.manager.iocs.sha256.encode()
        client = scope.get("client")
        ip = headers.get(b"x-endpoint-ip", b"").decode("latin-1") or (client[0] if client else "")
        self.manager.store.touch_endpoint(endpoint["uuid"], ip, now_ns())
        return (204, b"") if path == "/commands" else (200, body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] in _PATHS:
            answer = self._answer(scope)
            if answer is not None:
                status, body = answer
                headers = [(b"content-length", str(len(body)).encode())]
                if status == 200:
                    headers.append((b"content-type", b"text/plain; charset=utf-8"))
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
