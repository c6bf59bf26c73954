"""Helpers for agent tests: the real engine over inline rules, a recording action sink, an
in-memory output and a Sysmon-shaped event builder."""

from __future__ import annotations

import json
import threading
from typing import Any

from vigil.agent.config import AgentConfig
from vigil.engine import Engine


def engine_with(rules: list[dict[str, Any]], default_actions: dict[int, list[str]] | None = None) -> Engine:
    """The real engine as the agent builds it (ATT&CK and actions shown, WHIDS band defaults)."""
    engine = Engine(
        show_attack=True,
        show_actions=True,
        default_actions=AgentConfig().default_actions() if default_actions is None else default_actions,
    )
    if rules:
        engine.load_text("\n".join(json.dumps(r) for r in rules), source="<test rules>")
    return engine


class RecordingRunner:
    """An ActionSink that records what it was asked to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], dict[str, Any], Any]] = []
        self.lock = threading.Lock()

    def submit(self, actions: list[str], event: dict[str, Any], process: Any) -> None:
        with self.lock:
            self.calls.append((actions, event, process))


class MemoryOutput:
    name = "memory"

    def __init__(self) -> None:
        self.events: list[tuple[dict[str, Any], bool]] = []
        self.flushes = 0
        self.closed = False

    def write(self, event: dict[str, Any], *, alert: bool) -> None:
        self.events.append((event, alert))

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True

    def stats(self) -> dict[str, int]:
        return {"written": len(self.events)}


def proc_event(pid: int, image: str, *, ppid: int = 1, eid: int = 1, **extra: str) -> dict[str, Any]:
    data = {"ProcessId": str(pid), "ParentProcessId": str(ppid), "Image": image, **extra}
    return {
        "Event": {
            "System": {"Channel": "Linux-Sysmon/Operational", "EventID": eid, "Computer": "test"},
            "EventData": data,
        }
    }
