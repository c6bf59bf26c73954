"""Client of the manager's endpoint API (WHIDS §3), as the agent uses it.

Every request carries the WHIDS headers (``X-Endpoint-Uuid``, ``X-Api-Key``,
``X-Endpoint-Hostname``); bodies are gzip-compressed. Failures are translated at this boundary into
:class:`Retryable` (the manager is down or overloaded: try again later) or :class:`Fatal` (the
manager refused us: wrong credentials, pin mismatch, a request it will never accept), so callers
never branch on httpx's exceptions.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import logging
import math
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from vigil.agent.link.tls import PinMismatchError, pinned_context, verified_context

logger = logging.getLogger(__name__)

__all__ = ["UPLOAD_CHUNK", "EndpointClient", "Fatal", "LinkError", "ManagerAddress", "Retryable"]

UPLOAD_CHUNK = 3 * 1024 * 1024  # WHIDS uploads artifacts in 3 MiB chunks
USER_AGENT = "vigil-agent/1.0 (Whids-API-Client/1.0 compatible)"


class LinkError(Exception):
    """A request to the manager failed."""


class Retryable(LinkError):
    """Transient: connection refused, timeout, 5xx, 429. The request may succeed later."""


class Fatal(LinkError):
    """The manager refused the request (auth, pin, validation); retrying as is will not help."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ManagerAddress:
    """Where and how to reach the manager's endpoint API."""

    url: str
    uuid: str
    key: str
    fingerprint: str = ""  # hex SHA-256 of the manager certificate's SPKI (pinning)
    server_key: str = ""  # expected body of GET /key, when the manager has one
    verify_tls: bool = True  # False only for plain-HTTP labs; a pin makes verification unnecessary
    ca_file: str | None = None

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        if parts.hostname is None:
            raise ValueError(f"manager url {self.url!r} has no host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.hostname, port


class EndpointClient:
    """One agent's session with the manager's endpoint API."""

    def __init__(
        self, address: ManagerAddress, *, hostname: str | None = None, timeout: float = 30.0
    ) -> None:
        scheme = urlsplit(address.url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"manager url {address.url!r}: scheme must be http or https")
        self.address = address
        self.hostname = hostname or socket.gethostname()
        self._timeout = timeout
        self._http: httpx.Client | None = None
        # The forwarder and the scheduler share this client: one lazy session, never two.
        self._lock = threading.Lock()

    @property
    def timeout(self) -> float:
        """Seconds one request may take (connect, TLS handshake, body)."""
        return self._timeout

    # -- connection ------------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        with self._lock:
            return self._client_locked()

    def _client_locked(self) -> httpx.Client:
        if self._http is None:
            verify: ssl.SSLContext | bool = False
            if urlsplit(self.address.url).scheme == "https":
                try:
                    if self.address.fingerprint:
                        host, port = self.address.host_port
                        verify = pinned_context(host, port, self.address.fingerprint, self._timeout)
                    elif self.address.verify_tls:
                        verify = verified_context(self.address.ca_file)
                except PinMismatchError as exc:
                    raise Fatal(str(exc)) from exc
                except (OSError, ssl.SSLError) as exc:
                    raise Retryable(f"cannot reach {self.address.url}: {exc}") from exc
            self._http = httpx.Client(
                base_url=self.address.url.rstrip("/"),
                verify=verify,
                timeout=self._timeout,
                trust_env=False,
                headers={
                    "User-Agent": USER_AGENT,
                    "X-Endpoint-Uuid": self.address.uuid,
                    "X-Api-Key": self.address.key,
                    "X-Endpoint-Hostname": self.hostname,
                },
            )
        return self._http

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: dict[str, str] | None = None,
        ok: Sequence[int] = (200,),
    ) -> httpx.Response:
        headers = {}
        content = None
        if body is not None:
            content = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        try:
            response = self._client().request(method, path, content=content, headers=headers, params=params)
        except httpx.TransportError as exc:
            # A broken connection may mean a new server: drop the session (and its pin context).
            self.close()
            raise Retryable(f"{method} {path}: {exc}") from exc
        if response.status_code in ok:
            return response
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise Retryable(f"{method} {path}: HTTP {response.status_code}")
        raise Fatal(
            f"{method} {path}: HTTP {response.status_code}: {response.text[:200]}", response.status_code
        )

    def check_server(self) -> None:
        """Verify the manager answers and, when configured, that it knows our shared server key."""
        response = self._request("GET", "/key")
        if self.address.server_key and not hmac.compare_digest(response.text, self.address.server_key):
            self.close()
            raise Fatal("the manager's server key does not match the configured server-key")

    # -- events ----------------------------------------------------------------------------------

    def post_logs(self, lines: Sequence[bytes]) -> None:
        """Send serialized events as one gzip NDJSON batch."""
        self._request("POST", "/logs", body=b"\n".join(lines) + b"\n")

    # -- rules, IoCs, config ---------------------------------------------------------------------

    def rules_sha256(self) -> str:
        return self._request("GET", "/rules/sha256").text.strip()

    def rules(self) -> bytes:
        return self._request("GET", "/rules").content

    def sigma_rules_sha256(self) -> str:
        """sha256 of the Sigma set; a manager without Sigma routes (WHIDS: 404) serves the empty set."""
        response = self._request("GET", "/rules/sigma/sha256", ok=(200, 404))
        if response.status_code == 404:
            return hashlib.sha256(b"").hexdigest()
        return response.text.strip()

    def sigma_rules(self) -> bytes:
        return self._request("GET", "/rules/sigma").content

    def iocs_sha256(self) -> str:
        return self._request("GET", "/iocs/sha256").text.strip()

    def iocs(self) -> list[str]:
        values = orjson.loads(self._request("GET", "/iocs").content)
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise Fatal("GET /iocs: expected a JSON array of strings")
        return values

    def config_sha256(self) -> str | None:
        response = self._request("GET", "/config/sha256", ok=(200, 204))
        return None if response.status_code == 204 else response.text.strip()

    def config(self) -> dict[str, Any] | None:
        response = self._request("GET", "/config", ok=(200, 204))
        if response.status_code == 204:
            return None
        value = orjson.loads(response.content)
        if not isinstance(value, dict):
            raise Fatal("GET /config: expected a JSON object")
        return value

    def post_config(self, config: dict[str, Any]) -> None:
        self._request("POST", "/config", body=orjson.dumps(config))

    def post_system_info(self, info: dict[str, Any]) -> None:
        self._request("POST", "/info/system", body=orjson.dumps(info))

    # -- commands --------------------------------------------------------------------------------

    def command(self) -> dict[str, Any] | None:
        response = self._request("GET", "/commands", ok=(200, 204))
        if response.status_code == 204 or not response.content.strip():
            return None
        value = orjson.loads(response.content)
        if not isinstance(value, dict):
            raise Fatal("GET /commands: expected a JSON object")
        return value

    def post_command(self, result: dict[str, Any]) -> None:
        self._request("POST", "/commands", body=orjson.dumps(result))

    # -- artifacts -------------------------------------------------------------------------------

    def upload(self, path: Path, *, guid: str, event_hash: str, name: str | None = None) -> None:
        """Upload one artifact file in 3 MiB chunks (``POST /upload/dumps``)."""
        for chunk in _chunks(path, guid=guid, event_hash=event_hash, name=name or path.name):
            self._request("POST", "/upload/dumps", body=orjson.dumps(chunk))


def _chunks(path: Path, *, guid: str, event_hash: str, name: str) -> Iterator[dict[str, Any]]:
    size = path.stat().st_size
    total = max(1, math.ceil(size / UPLOAD_CHUNK))
    with path.open("rb") as handle:
        for number in range(1, total + 1):
            data = handle.read(UPLOAD_CHUNK)
            yield {
                "filename": name,
                "guid": guid,
                "event-hash": event_hash,
                "content": base64.b64encode(data).decode("ascii"),
                "chunk": number,
                "total": total,
            }
