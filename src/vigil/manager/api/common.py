"""What both APIs share: the WHIDS envelope, error translation, and the body guard middleware."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.manager.errors import BadRequest, ManagerError, RuleRejected
from vigil.manager.gunzip import gunzip_bounded

__all__ = ["BodyGuard", "envelope", "install_error_handlers", "ok", "ok_raw", "parse_bool"]

logger = logging.getLogger(__name__)

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(value: str | None, field: str) -> bool:
    """Go's strconv.ParseBool; a missing value is false."""

    if value is None or value == "":
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadRequest(f"{field}: {value!r} is not a boolean", field=field)


def envelope(data: Any, error: str = "", status: int = 200) -> Response:
    body = orjson.dumps(
        {"data": data, "message": "NOK" if error else "OK", "error": error},
        option=orjson.OPT_NON_STR_KEYS,
    )
    return Response(body, status_code=status, media_type="application/json")


def ok(data: Any) -> Response:
    return envelope(data)


def ok_raw(data_json: bytes) -> Response:
    """An envelope around already-serialized JSON ``data`` (search results are spliced, not re-encoded)."""
    return Response(b'{"data":' + data_json + b',"message":"OK","error":""}', media_type="application/json")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ManagerError)
    async def _manager_error(request: Request, exc: ManagerError) -> Response:
        data = exc.errors if isinstance(exc, RuleRejected) else None
        return envelope(data, exc.message, exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
            for err in exc.errors()
        ]
        return envelope(None, "; ".join(problems) or "invalid request", 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return envelope(None, str(exc.detail), exc.status_code)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the whole ``body`` once, then defers to the server's."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class BodyGuard:
    """ASGI middleware: refuse bodies over ``limit`` (413) and gunzip ``Content-Encoding: gzip`` ones.

    The limit applies to the body as received and after decompression, so a small gzip bomb is
    refused too. Handlers see an uncompressed body, except on the POST paths of ``gzip_passthrough``:
    those get the gzip body as received, with its ``Content-Encoding`` header, and must inflate it
    with :func:`~vigil.manager.gunzip.gunzip_bounded` (``POST /logs`` does so in its parser worker).
    """

    def __init__(self, app: ASGIApp, limit: int, gzip_passthrough: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.limit = limit
        self.gzip_passthrough = gzip_passthrough

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._reject(send, 413, f"request body over {self.limit} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._reject(send, 413, f"request body over {self.limit} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        encoding = headers.get(b"content-encoding", b"").lower().strip()
        if encoding == b"gzip" and scope["method"] == "POST" and scope["path"] in self.gzip_passthrough:
            await self.app(scope, _replay(body, receive), send)
            return
        if encoding == b"gzip":
            try:
                body = gunzip_bounded(body, self.limit)
            except ManagerError as exc:
                await self._reject(send, exc.status, exc.message)
                return
        elif encoding not in (b"", b"identity"):
            await self._reject(send, 415, f"unsupported Content-Encoding {encoding.decode(errors='replace')}")
            return
        new_headers = [
            (k, v) for k, v in scope.get("headers") or [] if k not in (b"content-encoding", b"content-length")
        ]
        new_headers.append((b"content-length", str(len(body)).encode()))
        scope = dict(scope, headers=new_headers)
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    async def _reject(send: Send, status: int, error: str) -> None:
        payload = orjson.dumps({"data": None, "message": "NOK", "error": error})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
