"""Run both listeners in one process (one event loop, two uvicorn servers, shared state)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

import uvicorn

from vigil.manager.app import create_admin_app, create_endpoint_app
from vigil.manager.config import ManagerConfig
from vigil.manager.errors import BadRequest
from vigil.manager.state import Manager

__all__ = ["serve"]

logger = logging.getLogger(__name__)


def _server(app: object, config: ManagerConfig, host: str, port: int) -> uvicorn.Server:
    ssl: dict[str, str] = {}
    if config.tls:
        if not config.cert_path.is_file() or not config.key_path.is_file():
            raise BadRequest(
                f"TLS is on but {config.cert_path} or {config.key_path} is missing: run `vigil manager init`"
                " or set tls = false",
                field="tls",
            )
        ssl = {"ssl_certfile": str(config.cert_path), "ssl_keyfile": str(config.key_path)}
    uv_config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=90,
        ws_ping_interval=20,
        server_header=False,
        **ssl,  # type: ignore[arg-type]
    )
    return uvicorn.Server(uv_config)


def serve(config: ManagerConfig, ready: Callable[[], None] | None = None) -> None:
    """Serve both APIs until SIGINT/SIGTERM; the database is closed cleanly on the way out."""
    manager = Manager.open(config)
    servers = [
        _server(create_endpoint_app(manager), config, config.endpoint_host, config.endpoint_port),
        _server(create_admin_app(manager), config, config.admin_host, config.admin_port),
    ]

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            for server in servers:
                server.should_exit = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        tasks = [asyncio.create_task(server._serve()) for server in servers]
        while not all(server.started for server in servers):
            if any(task.done() for task in tasks):
                break
            await asyncio.sleep(0.05)
        if all(server.started for server in servers):
            scheme = "https" if config.tls else "http"
            logger.warning(
                "vigil manager: endpoint API %s://%s:%d, admin API %s://%s:%d",
                scheme,
                config.endpoint_host,
                config.endpoint_port,
                scheme,
                config.admin_host,
                config.admin_port,
            )
            if ready is not None:
                ready()
        else:
            stop()
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        manager.close()
