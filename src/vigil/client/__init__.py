"""vigil.client: a typed Python client of the manager admin API."""

from vigil.client.admin import AdminClient, pinned_ssl_context
from vigil.client.errors import APIError, ClientError, TransportError

__all__ = ["APIError", "AdminClient", "ClientError", "TransportError", "pinned_ssl_context"]
