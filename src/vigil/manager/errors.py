"""Errors of the manager, each carrying the HTTP status it maps to.

::

    ManagerError (500)
    ├── BadRequest (400)          malformed query, body or value; ``field`` names what is wrong
    │   └── RuleRejected (400)    rules that do not compile; ``errors`` lists every one
    ├── Unauthorized (403)        missing, wrong or cross-API key (WHIDS answers 403 too)
    ├── Forbidden (403)           hostname pinning, config already present
    ├── NotFound (404)            unknown endpoint, user, artifact, ...
    ├── Conflict (409)            unique name or identifier already used
    ├── TooLarge (413)            request body over the configured limit
    └── StoreError (503)          the database refused or failed (foreign sqlite3 errors end here)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "ManagerError",
    "NotFound",
    "RuleRejected",
    "StoreError",
    "TooLarge",
    "Unauthorized",
]


class ManagerError(Exception):
    """Base of every manager error; ``status`` is the HTTP status the APIs answer with."""

    status = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BadRequest(ManagerError):
    status = 400


class RuleRejected(BadRequest):
    """Rules that failed to compile; ``errors`` holds one dict per problem (file/line/rule/...)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} rule error(s); nothing was stored", field="rules")
        self.errors = errors


class Unauthorized(ManagerError):
    status = 403


class Forbidden(ManagerError):
    status = 403


class NotFound(ManagerError):
    status = 404


class Conflict(ManagerError):
    status = 409


class TooLarge(ManagerError):
    status = 413


class StoreError(ManagerError):
    status = 503
