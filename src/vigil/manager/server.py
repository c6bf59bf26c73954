"""Run both listeners in one process: one event loop, two uvicorn servers, shared state.

:class:`ManagerServer` runs in the foreground (``vigil manager run``, stops on SIGINT/SIGTERM) or in
a background thread (tests, embedding), and reports the ports it actually bound (port 0 = any).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import uvicorn
from fastapi import APIRouter

from vigil.manager.app import create_admin_app, create_endpoint_app
from vigil.manager.config import ManagerConfig
from vigil.manager.errors import BadRequest, ManagerError
from vigil.manager.state import Manager

__all__ = ["ManagerServer", "serve"]

logger = logging.getLogger(__name__)


def _uvicorn(app: object, config: ManagerConfig, host: str, port: int) -> uvicorn.Server:
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
        lifespan="off",
        **ssl,  # type: ignore[arg-type]
    )
    return uvicorn.Server(uv_config)


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when installed (uvicorn[standard]); its TLS and sockets cost far less CPU."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)


def _bound_port(server: uvicorn.Server) -> int:
    for srv in getattr(server, "servers", []):
        for sock in srv.sockets:
            return int(sock.getsockname()[1])
    return 0


class ManagerServer:
    def __init__(self, config: ManagerConfig, extra_routers: Sequence[APIRouter] = ()) -> None:
        self.config = config
        self.manager = Manager.open(config)
        try:
            self._endpoint = _uvicorn(
                create_endpoint_app(self.manager), config, config.endpoint_host, config.endpoint_port
            )
            self._admin = _uvicorn(
                create_admin_app(self.manager, extra_routers), config, config.admin_host, config.admin_port
            )
        except ManagerError:
            self.manager.close()
            raise
        self.endpoint_port = 0
        self.admin_port = 0
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._failed = False

    def _stop_servers(self) -> None:
        self._endpoint.should_exit = True
        self._admin.should_exit = True

    async def _main(self, on_ready: Callable[[], None] | None, signals: bool) -> None:
        loop = asyncio.get_running_loop()
        if signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._stop_servers)
        servers = (self._endpoint, self._admin)
        tasks = [asyncio.create_task(s._serve()) for s in servers]
        while not all(s.started for s in servers) and not any(t.done() for t in tasks):
            await asyncio.sleep(0.02)
        if all(s.started for s in servers):
            self.endpoint_port = _bound_port(self._endpoint)
            self.admin_port = _bound_port(self._admin)
            scheme = "https" if self.config.tls else "http"
            logger.warning(
                "vigil manager: endpoint API %s://%s:%d, admin API %s://%s:%d",
                *(scheme, self.config.endpoint_host, self.endpoint_port),
                *(scheme, self.config.admin_host, self.admin_port),
            )
            self._started.set()
            if on_ready is not None:
                on_ready()
        else:
            self._failed = True
            self._started.set()
            self._stop_servers()
        await asyncio.gather(*tasks, return_exceptions=True)

    def run(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve in the foreground until SIGINT/SIGTERM, then close the database."""
        try:
            _run(self._main(on_ready, signals=True))
        finally:
            self.manager.close()

    def start(self, timeout: float = 30.0) -> None:
        """Serve from a background thread; return once both listeners accept connections."""

        def target() -> None:
            _run(self._main(None, signals=False))

        self._thread = threading.Thread(target=target, name="vigil-manager", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout) or self._failed:
            self.stop()
            raise ManagerError("manager listeners did not start (port in use?)")

    def stop(self) -> None:
        self._stop_servers()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.manager.close()


def serve(config: ManagerConfig, ready: Callable[[], None] | None = None) -> None:
    ManagerServer(config).run(ready)
