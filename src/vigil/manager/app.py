"""ASGI applications of the manager: one for the endpoint API, one for the admin API.

Extra routers (the web console) are mounted on the admin app with ``extra_routers``; they get the
same body guard and error envelope, and must declare their own authentication.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.routing import BaseRoute

from vigil import __version__
from vigil.manager.api import admin, content, endpoint
from vigil.manager.api.common import BodyGuard, install_error_handlers
from vigil.manager.api.fastpath import EndpointFastPath
from vigil.manager.console import PUBLIC_CONSOLE_PATHS
from vigil.manager.console import router as console_router
from vigil.manager.state import Manager

__all__ = ["PUBLIC_PATHS", "create_admin_app", "create_endpoint_app", "iter_routes"]

#: Routes served without a key: the API description and the console's page, assets and login
#: form (no data; the console then authenticates every API call with its session cookie).
PUBLIC_PATHS = frozenset(
    {
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        *PUBLIC_CONSOLE_PATHS,
        "/ui/static/{name}",
        "/ui/session",
        "/ui/logout",
    }
)

_SECURITY = {"ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}}


def _app(
    manager: Manager,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    gzip_passthrough: frozenset[str] = frozenset(),
) -> FastAPI:
    app = FastAPI(title=title, description=description, version=__version__, redoc_url=None)
    app.state.manager = manager
    for router in routers:
        app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(BodyGuard, limit=manager.config.max_body_bytes, gzip_passthrough=gzip_passthrough)
    original = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema is None:
            schema = original()
            schema.setdefault("components", {})["securitySchemes"] = _SECURITY
            schema["security"] = [{"ApiKeyAuth": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def create_admin_app(manager: Manager, extra_routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The admin API (WHIDS port 1520). ``content`` goes first: its static paths
    (``/endpoints/artifacts``) must win over ``/endpoints/{uuid}``."""
    return _app(
        manager,
        "vigil manager admin API",
        "WHIDS-compatible admin API: every response is {data, message, error}; authenticate with X-Api-Key.",
        [content.router, admin.router, console_router, *extra_routers],
    )


def create_endpoint_app(manager: Manager) -> FastAPI:
    """The endpoint API used by agents (WHIDS port 1519)."""
    app = _app(
        manager,
        "vigil manager endpoint API",
        "WHIDS-compatible agent API: authenticate with X-Endpoint-Uuid, X-Api-Key and X-Endpoint-Hostname.",
        [endpoint.router],
        gzip_passthrough=frozenset({"/logs"}),  # inflated by the parser worker
    )
    app.add_middleware(EndpointFastPath, manager=manager)
    return app


def iter_routes(app: Any) -> Iterator[BaseRoute]:
    """Every concrete route of ``app``, looking inside included routers (FastAPI wraps them)."""
    for route in app.routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from iter_routes(inner)
        else:
            yield route
