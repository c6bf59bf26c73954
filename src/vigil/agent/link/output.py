"""The ``manager`` output: every reported event goes durably into the spool, then to the forwarder.

``write()`` serializes the event once (:func:`~vigil.agent.spool.serialize_event`, sorted keys). An alert is committed to the
:class:`~vigil.agent.spool.Spool` before ``write()`` returns, so it survives a crash of the agent;
other reported events (filter matches, everything under ``log_all``) are committed together at the
pipeline's ``flush()`` (end of each batch, at most ``BUFFER_EVENTS`` apart), because one fsync per
telemetry event caps forwarding near 1 300 events/s (``bench/link_e2e.py``). Then the forwarder
(started by :class:`vigil.agent.link.service.ManagerService`) is woken to send them. The pipeline
already decides what reaches outputs.

The event is written without ``EdrData``, as compact JSON with sorted keys: the manager stores such
a line as received and its hash is the SHA-1 of those bytes, i.e. of the canonical JSON, which is
also the ``<event-hash>`` directory the actions write artifacts to, so an alert links to its
artifacts and a batch re-sent after a crash is stored once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vigil.agent.config import AgentConfig
from vigil.agent.spool import Spool, serialize_event

logger = logging.getLogger(__name__)

__all__ = ["SPOOL_FILE", "ManagerOutput", "manager_output_factory", "manager_output_requirements"]

SPOOL_FILE = "events.db"
BUFFER_EVENTS = 512
_MIB = 1024 * 1024


class ManagerOutput:
    """Reported events into the spool; ``notify`` (set by the link) wakes the forwarder."""

    name = "manager"

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.notify: Callable[[], None] | None = None
        self.attached = False  # a running link owns the spool's lifetime then
        self.written = 0
        self.errors = 0
        self._pending: list[bytes] = []

    def write(self, event: dict[str, Any], *, alert: bool) -> None:
        try:
            body = serialize_event(event)
        except TypeError:
            self.errors += 1
            raise
        self._pending.append(body)
        self.written += 1
        if alert or len(self._pending) >= BUFFER_EVENTS:
            self.flush()

    def flush(self) -> None:
        """Commit what was written since the last flush (one transaction) and wake the forwarder."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self.spool.put(pending)
        notify = self.notify
        if notify is not None:
            notify()

    def close(self) -> None:
        self.flush()
        if not self.attached:
            self.spool.close()

    def stats(self) -> dict[str, int]:
        return {
            "written": self.written,
            "errors": self.errors,
            "spooled": len(self.spool),
            "buffered": len(self._pending),
            "spool_bytes": self.spool.size_bytes,
        }


def manager_output_factory(config: AgentConfig) -> ManagerOutput:
    directory = Path(config.spool.dir)
    directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    return ManagerOutput(Spool(directory / SPOOL_FILE, max_bytes=config.spool.max_mb * _MIB))


def manager_output_requirements(config: AgentConfig) -> list[str]:
    unmet = []
    if not config.manager.url:
        unmet.append("manager.url is empty (standalone mode)")
    if not config.manager.uuid or not config.manager.key:
        unmet.append("manager.uuid and manager.key must be set (vigil agent enroll)")
    probe = config.spool.dir
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.access(probe, os.W_OK | os.X_OK):
        unmet.append(f"spool.dir {config.spool.dir} is not writable by uid {os.geteuid()}")
    return unmet
