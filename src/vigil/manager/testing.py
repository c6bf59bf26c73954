"""A real manager on loopback for tests and benchmarks: TLS on, ports chosen by the kernel.

``with LiveManager(tmp_path) as live:`` starts both listeners in a background thread with a fresh
self-signed certificate, an admin user and one enrolled endpoint; ``live.admin()`` is an
:class:`~vigil.client.AdminClient` pinned to that certificate and ``live.agent()`` an httpx client
carrying an endpoint's headers.
"""

from __future__ import annotations

import gzip
import ssl
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import APIRouter

from vigil.client import AdminClient, pinned_ssl_context
from vigil.manager.api.admin import create_endpoint, create_user
from vigil.manager.config import ManagerConfig
from vigil.manager.server import ManagerServer
from vigil.manager.tls import generate_self_signed

__all__ = ["GZIP", "LiveManager", "make_event", "ndjson", "start_manager_process"]


class LiveManager:
    def __init__(
        self,
        data_dir: Path,
        *,
        tls: bool = True,
        max_body_bytes: int = 64 * 1024 * 1024,
        sync_full: bool = True,
        extra_routers: Sequence[APIRouter] = (),
    ) -> None:
        self.config = ManagerConfig(
            data_dir=data_dir,
            admin_host="127.0.0.1",
            admin_port=0,
            endpoint_host="127.0.0.1",
            endpoint_port=0,
            tls=tls,
            server_key="vigil-test-server-key",
            max_body_bytes=max_body_bytes,
            sync_full=sync_full,
        )
        self.extra_routers = extra_routers
        self.cert = self.config.cert_path
        self.fingerprint = ""

    def __enter__(self) -> LiveManager:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        if self.config.tls:
            self.cert.parent.mkdir(parents=True, exist_ok=True)
            self.fingerprint = generate_self_signed(self.cert, self.config.key_path)
        self.server = ManagerServer(self.config, self.extra_routers)
        self.server.start()
        self.manager = self.server.manager
        user = create_user(self.manager, "test-admin")
        self.admin_key: str = user["key"]
        endpoint = create_endpoint(self.manager)
        self.endpoint_uuid: str = endpoint["uuid"]
        self.endpoint_key: str = endpoint["key"]
        scheme = "https" if self.config.tls else "http"
        self.admin_url = f"{scheme}://127.0.0.1:{self.server.admin_port}"
        self.endpoint_url = f"{scheme}://127.0.0.1:{self.server.endpoint_port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    @property
    def ssl_context(self) -> ssl.SSLContext | bool:
        return pinned_ssl_context(self.cert) if self.config.tls else False

    def admin(self, key: str | None = None) -> AdminClient:
        return AdminClient(self.admin_url, key or self.admin_key, verify=self.ssl_context)

    def agent(
        self, uuid: str | None = None, key: str | None = None, hostname: str = "agent-host", **kwargs: Any
    ) -> httpx.Client:
        headers = {
            "X-Endpoint-Uuid": uuid or self.endpoint_uuid,
            "X-Api-Key": key or self.endpoint_key,
            "X-Endpoint-Hostname": hostname,
            "User-Agent": "Whids-API-Client/1.0",
        }
        return httpx.Client(
            base_url=self.endpoint_url, headers=headers, verify=self.ssl_context, trust_env=False, **kwargs
        )

    def new_endpoint(self) -> tuple[str, str]:
        endpoint = create_endpoint(self.manager)
        return endpoint["uuid"], endpoint["key"]


def make_event(
    n: int,
    *,
    time: str = "2026-01-02T03:04:05.000000001Z",
    signatures: tuple[str, ...] = (),
    criticality: int = 0,
    channel: str = "Microsoft-Windows-Sysmon/Operational",
    event_id: int = 1,
    hash_: str | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "Event": {
            "EventData": {"Image": f"C:\\bin\\tool{n}.exe", "CommandLine": f"tool{n} --run", "N": str(n)},
            "System": {
                "Channel": channel,
                "Computer": "DESKTOP-TEST",
                "EventID": event_id,
                "TimeCreated": {"SystemTime": time},
            },
        }
    }
    if signatures:
        event["Event"]["Detection"] = {"Signature": list(signatures), "Criticality": criticality}
    if hash_ is not None:
        event["Event"]["EdrData"] = {"Event": {"Hash": hash_}}
    return event


def ndjson(events: list[dict[str, Any]], *, compress: bool = True) -> bytes:
    body = b"".join(orjson.dumps(e) + b"\n" for e in events)
    return gzip.compress(body) if compress else body


GZIP = {"Content-Encoding": "gzip"}


def start_manager_process(data: Path) -> tuple[subprocess.Popen[str], int, int]:
    """A real ``vigil manager run`` on an initialised data dir, ports chosen by the kernel.

    Returns once it printed ``ready endpoint=P admin=P``: (process, endpoint port, admin port). Used
    where the manager must be a separate process that a test or benchmark can SIGKILL.
    """
    command = [sys.executable, "-m", "vigil", "manager", "run", "--data", str(data)]
    command += ["--host", "127.0.0.1", "--admin-port", "0", "--endpoint-port", "0"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"manager did not start: {line!r}")
    ports = dict(part.split("=") for part in line.split()[1:])
    return proc, int(ports["endpoint"]), int(ports["admin"])
