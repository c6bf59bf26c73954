"""Helpers for the sensor tests: root gating, audit rule listing, an event collector."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

AUDIT_LOCK = "/run/vigil-audit-tests.lock"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: real kernel interfaces (CI runs as root)"
)


def audit_rules_with(key: str) -> list[str]:
    out = subprocess.run(["auditctl", "-l"], capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if key in line]


class Collector:
    """Event list filled by the sensor's pipeline thread, with a wait helper."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def find(self, pred: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if pred(e)]

    def wait_for(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 5.0, count: int = 1
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find(pred)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        return self.find(pred)
