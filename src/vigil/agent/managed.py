"""Managed mode: the output that hands reported events to the manager, and the link around it.

:class:`ManagerOutput` implements the pipeline's ``Output`` protocol: ``write`` serializes, ``flush``
(the end of each pipeline batch) commits the batch to the durable :class:`~vigil.agent.spool.Spool`,
from which the forwarder ships gzip NDJSON to ``POST /logs``. The same object runs the manager link
(WHIDS §4.9 schedule): commands, rule and IoC sync, artifact uploads, system info. ``close`` flushes,
lets the forwarder try to send what is spooled for a few seconds, and stops; whatever is not sent
stays in the spool for the next start.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from vigil.agent.config import AgentConfig

__all__ = ["ManagerOutput", "validate_rules"]

logger = logging.getLogger(__name__)


def validate_rules(body: bytes) -> list[str]:
    """Every error the engine finds in a rule set received from the manager (empty: usable)."""
    from vigil.engine import Engine, RuleLoadError

    try:
        Engine().load_text(body.decode("utf-8", "replace"), source="<manager rules>")
    except RuleLoadError as e:
        return [str(err) for err in e.errors] or [str(e)]
    return []


class ManagerOutput:
    name = "manager"

    def __init__(
        self,
        config: AgentConfig,
        *,
        on_update: Callable[[], None],
        processes: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        from vigil.agent.commands.builtins import CommandContext
        from vigil.agent.commands.executor import CommandExecutor
        from vigil.agent.forwarder import Forwarder
        from vigil.agent.link.client import EndpointClient, ManagerAddress
        from vigil.agent.link.session import LinkIntervals, ManagerLink
        from vigil.agent.link.sync import IocSync, RuleSync
        from vigil.agent.link.uploader import ArtifactUploader
        from vigil.agent.spool import Spool
        from vigil.agent.sysinfo import system_info

        m = config.manager
        self.spool = Spool(Path(config.spool.dir) / "spool.db", max_bytes=config.spool.max_mb << 20)
        self.client = EndpointClient(
            ManagerAddress(
                url=m.url,
                uuid=m.uuid,
                key=m.key,
                fingerprint=m.fingerprint.replace(":", "").lower(),
                server_key=m.server_key,
                verify_tls=m.tls_verify,
                ca_file=m.ca_file or None,
            ),
            hostname=config.hostname or socket.gethostname(),
            timeout=m.timeout,
        )
        self.forwarder = Forwarder(self.spool, self.client)
        self.link = ManagerLink(
            client=self.client,
            forwarder=self.forwarder,
            executor=CommandExecutor(CommandContext(agent_pid=os.getpid(), processes=processes)),
            rule_sync=RuleSync(self.client, Path(config.rules.dir), validate=validate_rules, apply=on_update),
            ioc_sync=IocSync(self.client, Path(config.rules.containers_dir), apply=on_update),
            uploader=ArtifactUploader(
                self.client, Path(config.dump.dir), max_upload_bytes=m.max_upload_mb << 20
            ),
            system_info=system_info,
            intervals=LinkIntervals(rules=config.rules.update_interval),
        )
        self._pending: list[bytes] = []
        self._written = 0
        self._errors = 0
        self._final: dict[str, Any] | None = None
        self.link.start()

    def write(self, event: dict[str, Any], *, alert: bool) -> None:
        self._pending.append(orjson.dumps(event))

    def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            self.spool.put(batch)
        except Exception as e:  # SpoolError: disk full, database unusable
            self._errors += len(batch)
            logger.error("manager output: %d events could not be spooled: %s", len(batch), e)
            return
        self._written += len(batch)

    def close(self) -> None:
        self.flush()
        try:
            self.link.stop(drain_deadline=5.0)
        finally:
            self._final = self.stats()  # what the final counters show once the spool is closed
            self.spool.close()

    def stats(self) -> dict[str, Any]:
        if self._final is not None:
            return self._final
        return {"written": self._written, "errors": self._errors, **self.link.status()}
