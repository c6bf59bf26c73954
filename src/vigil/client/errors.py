"""Errors of the admin API client.

::

    ClientError
    ├── APIError          the manager answered with an error (``status``, ``error``, ``data``)
    └── TransportError    the manager could not be reached (connection, TLS, timeout)
"""

from __future__ import annotations

from typing import Any

__all__ = ["APIError", "ClientError", "TransportError"]


class ClientError(Exception):
    pass


class APIError(ClientError):
    def __init__(self, status: int, error: str, data: Any = None) -> None:
        super().__init__(f"HTTP {status}: {error}")
        self.status = status
        self.error = error
        self.data = data


class TransportError(ClientError):
    pass
