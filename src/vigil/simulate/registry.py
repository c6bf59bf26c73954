"""Scenario registry and runner.

A scenario is a function taking a ``Sandbox``; ``@scenario`` registers it with its name, what it
does, the rules it is meant to trigger and whether it needs root. ``run_scenario`` gives it a fresh
sandbox and always cleans up, whatever the function raised.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from vigil.simulate.sandbox import ExpectedEvent, Sandbox, ScenarioSkipped

logger = logging.getLogger(__name__)

__all__ = ["SCENARIOS", "Scenario", "ScenarioResult", "run_scenario", "scenario", "select_scenarios"]

ScenarioFunc = Callable[[Sandbox], None]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    rules: tuple[str, ...]
    func: ScenarioFunc
    needs_root: bool = False


@dataclass(slots=True)
class ScenarioResult:
    name: str
    status: str  # "ran", "skipped" or "failed"
    message: str = ""
    expected: list[ExpectedEvent] = field(default_factory=list)
    skipped_rules: dict[str, str] = field(default_factory=dict)
    rules: tuple[str, ...] = ()

    @property
    def exercised_rules(self) -> list[str]:
        """Declared rules this run exercised (none unless it ran; minus steps that could not run)."""
        return [r for r in self.rules if r not in self.skipped_rules] if self.status == "ran" else []


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    name: str, summary: str, rules: Iterable[str], *, needs_root: bool = False
) -> Callable[[ScenarioFunc], ScenarioFunc]:
    """Register a scenario function under ``name``."""

    def register(func: ScenarioFunc) -> ScenarioFunc:
        if name in SCENARIOS:
            raise ValueError(f"simulation scenario {name!r} registered twice")
        SCENARIOS[name] = Scenario(name, summary, tuple(rules), func, needs_root)
        return func

    return register


def select_scenarios(names: Iterable[str]) -> list[Scenario]:
    """The named scenarios in the given order, or all of them when ``names`` is empty."""
    wanted = list(names)
    unknown = [n for n in wanted if n not in SCENARIOS]
    if unknown:
        raise KeyError(f"unknown simulation(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return [SCENARIOS[n] for n in wanted] if wanted else list(SCENARIOS.values())


def run_scenario(sc: Scenario) -> ScenarioResult:
    """Run one scenario in a fresh sandbox; never leaves anything behind."""
    if sc.needs_root and os.geteuid() != 0:
        return ScenarioResult(
            sc.name, "skipped", "needs root (it creates a network namespace or sets capabilities)"
        )
    with Sandbox() as sandbox:
        try:
            sc.func(sandbox)
        except ScenarioSkipped as exc:
            return ScenarioResult(sc.name, "skipped", str(exc), [], dict(sandbox.skipped_rules), sc.rules)
        except Exception as exc:
            logger.exception("simulation %s failed", sc.name)
            message = f"{type(exc).__name__}: {exc}"
            return ScenarioResult(sc.name, "failed", message, list(sandbox.expected), {}, sc.rules)
        return ScenarioResult(
            sc.name, "ran", "", list(sandbox.expected), dict(sandbox.skipped_rules), sc.rules
        )
