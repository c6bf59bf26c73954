"""The web console's routes, mounted on the admin listener under ``/ui/``.

The page and its assets are public (they hold no data); everything the page shows comes from the
admin API, authenticated by the session cookie that ``POST /ui/login`` sets (see ``sessions``).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse, RedirectResponse, Response

from vigil.manager.console.sessions import COOKIE_NAME, CSRF_HEADER, SAFE_METHODS, SessionStore

__all__ = ["PUBLIC_CONSOLE_PATHS", "ConsoleForbidden", "console_user", "router"]

router = APIRouter(include_in_schema=False)

_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
PUBLIC_CONSOLE_PATHS = frozenset({"/ui", "/ui/", "/ui/login", *(f"/ui/static/{a}" for a in _ASSETS)})

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class ConsoleForbidden(Exception):
    """A console session tried something its CSRF token or origin does not allow."""


def _store(conn: Request | WebSocket) -> SessionStore:
    state = conn.app.state
    if not hasattr(state, "console_sessions"):
        state.console_sessions = SessionStore()
    store: SessionStore = state.console_sessions
    return store


def console_user(conn: Request | WebSocket) -> dict[str, Any] | None:
    """The admin user of a console session cookie, or None when there is no valid session.

    Raises :class:`ConsoleForbidden` for a valid session used without its CSRF token (unsafe HTTP
    methods) or from a foreign origin (websockets).
    """
    session = _store(conn).get(conn.cookies.get(COOKIE_NAME))
    if session is None:
        return None
    if isinstance(conn, WebSocket):
        origin = conn.headers.get("origin", "")
        host = conn.headers.get("host", "")
        if not host or origin not in (f"https://{host}", f"http://{host}"):
            raise ConsoleForbidden("websocket origin does not match the console")
    elif conn.method not in SAFE_METHODS and not SessionStore.csrf_ok(session, conn.headers.get(CSRF_HEADER)):
        raise ConsoleForbidden("missing or wrong X-CSRF-Token for a console session")
    return session.user


def _asset(name: str) -> bytes:
    return resources.files("vigil.manager.console").joinpath("static", name).read_bytes()


def _page(body: bytes, media_type: str) -> Response:
    return Response(body, media_type=media_type, headers=_SECURITY_HEADERS)


@router.get("/ui")
def ui_redirect() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=308)


@router.get("/ui/")
def ui_index() -> Response:
    return _page(_asset("index.html"), "text/html; charset=utf-8")


@router.get("/ui/static/{name}")
def ui_static(name: str) -> Response:
    if name not in _ASSETS:
        return Response(status_code=404)
    return _page(_asset(name), _ASSETS[name])


@router.post("/ui/login")
async def ui_login(request: Request) -> Response:
    from vigil.manager.keys import hash_key

    try:
        body = await request.json()
    except ValueError:
        body = None
    key = body.get("key") if isinstance(body, dict) else None
    if not isinstance(key, str) or not key:
        return JSONResponse({"error": 'send {"key": "<admin API key>"}'}, status_code=400)
    user = request.app.state.manager.store.user_by_key_hash(hash_key(key.strip()))
    if user is None:
        return JSONResponse({"error": "this key is not an admin API key"}, status_code=401)
    token, session = _store(request).create(user)
    response = JSONResponse({"user": session.user, "csrf": session.csrf})
    response.set_cookie(
        COOKIE_NAME,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
        max_age=int(_store(request).ttl),
    )
    return response


@router.get("/ui/session")
def ui_session(request: Request) -> Response:
    """Whether the browser holds a session: ``{"user": null}`` when not (a normal state, not an error)."""
    session = _store(request).get(request.cookies.get(COOKIE_NAME))
    if session is None:
        return JSONResponse({"user": None, "csrf": None}, headers={"Cache-Control": "no-store"})
    return JSONResponse({"user": session.user, "csrf": session.csrf}, headers={"Cache-Control": "no-store"})


@router.post("/ui/logout")
def ui_logout(request: Request) -> Response:
    session = _store(request).get(request.cookies.get(COOKIE_NAME))
    if session is not None and not SessionStore.csrf_ok(session, request.headers.get(CSRF_HEADER)):
        return JSONResponse({"error": "missing or wrong X-CSRF-Token"}, status_code=403)
    _store(request).drop(request.cookies.get(COOKIE_NAME))
    response = JSONResponse({"ok": True})
    response.delete_cookie(COOKIE_NAME, path="/")
    return response
