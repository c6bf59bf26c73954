"""The agent's whole conversation with the manager, on WHIDS' schedule (§4.9).

:class:`ManagerLink` runs the forwarder and a scheduler thread with these periodic tasks:
command polling (every 5 s, every 0.5 s for 30 s after a command), rules and IoC sync
(``rules_interval``, WHIDS: 60 s), artifact upload (60 s), config sync (15 min) and system info.
Each task's failure is logged and counted; it never stops the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vigil.agent.commands.executor import CommandExecutor
from vigil.agent.forwarder import Forwarder
from vigil.agent.link.client import EndpointClient, LinkError
from vigil.agent.link.sync import ConfigSync, IocSync, RuleSync
from vigil.agent.link.uploader import ArtifactUploader

logger = logging.getLogger(__name__)

__all__ = ["LinkIntervals", "ManagerLink"]

COMMAND_BURST_S = 30.0


@dataclass(frozen=True)
class LinkIntervals:
    commands: float = 5.0
    commands_burst: float = 0.5
    rules: float = 60.0
    uploads: float = 60.0
    config: float = 900.0
    system_info: float = 60.0


@dataclass
class _Task:
    name: str
    interval: Callable[[], float]
    run: Callable[[], Any]
    next_run: float = 0.0
    failures: int = 0
    last_error: str = ""


@dataclass
class ManagerLink:
    client: EndpointClient
    forwarder: Forwarder
    executor: CommandExecutor
    rule_sync: RuleSync | None = None
    ioc_sync: IocSync | None = None
    config_sync: ConfigSync | None = None
    uploader: ArtifactUploader | None = None
    system_info: Callable[[], dict[str, Any]] | None = None
    intervals: LinkIntervals = field(default_factory=LinkIntervals)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._burst_until = 0.0
        self._last_info: dict[str, Any] | None = None
        self.tasks: list[_Task] = [_Task("commands", self._command_interval, self.poll_command)]
        if self.rule_sync:
            self.tasks.append(_Task("rules", lambda: self.intervals.rules, self.rule_sync.run_once))
        if self.ioc_sync:
            self.tasks.append(_Task("iocs", lambda: self.intervals.rules, self.ioc_sync.run_once))
        if self.uploader:
            self.tasks.append(_Task("uploads", lambda: self.intervals.uploads, self.uploader.run_once))
        if self.config_sync:
            self.tasks.append(_Task("config", lambda: self.intervals.config, self.config_sync.run_once))
        if self.system_info:
            self.tasks.append(_Task("system-info", lambda: self.intervals.system_info, self.push_system_info))

    def add_task(self, name: str, interval: Callable[[], float], run: Callable[[], Any]) -> None:
        """Another periodic task on the link's thread (e.g. the agent-health event)."""
        self.tasks.append(_Task(name, interval, run))

    def _command_interval(self) -> float:
        return (
            self.intervals.commands_burst if time.monotonic() < self._burst_until else self.intervals.commands
        )

    def start(self) -> None:
        self.forwarder.start()
        self._thread = threading.Thread(target=self._run, name="vigil-manager-link", daemon=True)
        self._thread.start()

    def stop(self, drain_deadline: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=drain_deadline + 5)
        self.forwarder.stop(drain_deadline)
        self.client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for task in self.tasks:
                if self._stop.is_set():
                    return
                if now < task.next_run:
                    continue
                try:
                    task.run()
                    task.last_error = ""
                except LinkError as exc:
                    task.failures += 1
                    task.last_error = str(exc)
                    logger.debug("task %s failed: %s", task.name, exc)
                except Exception as exc:  # a bug in one task must not stop the link
                    task.failures += 1
                    task.last_error = f"{type(exc).__name__}: {exc}"
                    logger.exception("task %s crashed", task.name)
                task.next_run = time.monotonic() + task.interval()
            wake = min(task.next_run for task in self.tasks)
            self._stop.wait(max(0.05, wake - time.monotonic()))

    def poll_command(self) -> bool:
        command = self.client.command()
        if command is None:
            return False
        result = self.executor.execute(command)
        self.client.post_command(result)
        self._burst_until = time.monotonic() + COMMAND_BURST_S
        return True

    def push_system_info(self) -> None:
        assert self.system_info is not None
        info = self.system_info()
        if info != self._last_info:
            self.client.post_system_info(info)
            self._last_info = info

    def status(self) -> dict[str, Any]:
        return {
            "forwarder": self.forwarder.stats.as_dict(),
            "spool": {
                "events": len(self.forwarder.spool),
                "bytes": self.forwarder.spool.size_bytes,
                "evicted": self.forwarder.spool.evicted,
            },
            "tasks": {t.name: {"failures": t.failures, "last_error": t.last_error} for t in self.tasks},
        }
