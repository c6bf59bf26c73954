"""`vigil simulate`: harmless, self-cleaning activities that trigger the default rules.

Each scenario acts only on files and processes it creates (see ``sandbox``), declares the rules it
is meant to trigger, and records the events a vigil agent should see for it.
"""

from vigil.simulate import scenarios as _scenarios  # noqa: F401 - registers the built-ins
from vigil.simulate.registry import (
    SCENARIOS,
    Scenario,
    ScenarioResult,
    run_scenario,
    scenario,
    select_scenarios,
)
from vigil.simulate.sandbox import ExpectedEvent, Sandbox, ScenarioSkipped

__all__ = [
    "SCENARIOS",
    "ExpectedEvent",
    "Sandbox",
    "Scenario",
    "ScenarioResult",
    "ScenarioSkipped",
    "rule_triggers",
    "run_scenario",
    "scenario",
    "select_scenarios",
]


def rule_triggers() -> dict[str, list[str]]:
    """Rule name -> names of the scenarios declared to trigger it."""
    triggers: dict[str, list[str]] = {}
    for sc in SCENARIOS.values():
        for rule in sc.rules:
            triggers.setdefault(rule, []).append(sc.name)
    return triggers
