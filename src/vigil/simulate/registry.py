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
    paths: list[str] = field(default_factory=list)  # what the sandbox owned (all removed by now)

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
    result = ScenarioResult(sc.name, "ran", rules=sc.rules)
    if sc.needs_root and os.geteuid() != 0:
        result.status, result.message = "skipped", "needs root (it creates a network namespace)"
        return result
    with Sandbox() as sandbox:
        try:
            sc.func(sandbox)
        except ScenarioSkipped as exc:
            result.status, result.message = "skipped", str(exc)
        except Exception as exc:
            logger.exception("simulation %s failed", sc.name)
            result.status, result.message = "failed", f"{type(exc).__name__}: {exc}"
        result.expected = list(sandbox.expected)
        result.skipped_rules = dict(sandbox.skipped_rules)
        result.paths = [str(p) for p in sandbox.owned_paths]
    return result
