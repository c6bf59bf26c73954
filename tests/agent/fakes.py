"""Small stand-ins for the engine and the action runner, for pipeline tests.

``GeneLikeEngine`` takes Gene rule dicts but understands only ``$x: Field = 'value'`` matches joined by
``and`` (enough to state the pipeline's WHIDS §4.3 behaviour with inline rules); it applies Gene's
detection arithmetic: criticality = min(10, sum), actions = rule actions + band defaults, filter rules
only mark the event. The real engine replaces it in tests as soon as it is on main.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

_MATCH = re.compile(r"^\$(\w+):\s*(\w+)\s*=\s*'(.*)'$")


@dataclass
class FakeMatch:
    signature: list[str]
    criticality: int
    actions: list[str]
    filtered: bool
    attack: list[Any] = field(default_factory=list)

    def to_whids(self) -> dict[str, Any] | None:
        if not self.signature:
            return None
        out: dict[str, Any] = {"Signature": self.signature, "Criticality": self.criticality}
        if self.actions:
            out["Actions"] = self.actions
        return out


class GeneLikeEngine:
    def __init__(
        self, rules: list[dict[str, Any]], default_actions: dict[int, list[str]] | None = None
    ) -> None:
        self.default_actions = default_actions or {}
        self.rules = []
        for rule in rules:
            matches = {}
            for m in rule["Matches"]:
                name, fld, value = _MATCH.match(m).groups()  # type: ignore[union-attr]
                matches[name] = (fld, value)
            self.rules.append((rule, matches))
        self.calls = 0

    def match(self, event: dict[str, Any]) -> FakeMatch | None:
        self.calls += 1
        data = event["Event"].get("EventData", {})
        names: list[str] = []
        crit, actions, filtered = 0, [], False
        for rule, matches in self.rules:
            if all(data.get(f) == v for f, v in matches.values()):
                if rule["Meta"].get("Filter"):
                    filtered = True
                    continue
                names.append(rule["Name"])
                crit += rule["Meta"].get("Criticality", 0)
                actions += [a for a in rule.get("Actions", []) if a not in actions]
        if not names and not filtered:
            return None
        crit = min(10, crit)
        for a in self.default_actions.get(crit, []):
            if a not in actions:
                actions.append(a)
        return FakeMatch(names, crit if names else 0, actions if names else [], filtered)


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
