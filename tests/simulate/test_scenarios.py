"""Each simulation scenario really runs here, leaves nothing behind, and the events it produces
trigger the rules it declares when matched by the real engine with the default rule set."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from vigil.engine import Engine
from vigil.rules import default_rules_path
from vigil.rules.catalog import load_catalog
from vigil.simulate import SCENARIOS, Sandbox, Scenario, ScenarioSkipped, run_scenario, select_scenarios
from vigil.simulate.sandbox import SIM_PREFIX


def assert_skip_reason_is_true(rule: str, reason: str) -> None:
    """A step may be skipped only because a tool it needs is really missing here."""
    if reason.startswith("neither "):
        tools = reason.removeprefix("neither ").removesuffix(" is installed").split(" nor ")
    else:
        assert reason.endswith(" is not installed"), f"{rule} skipped: {reason}"
        tools = [reason.removesuffix(" is not installed").split()[0]]
    assert all(shutil.which(t) is None for t in tools), f"{rule} skipped although {tools} exist"


@pytest.fixture(scope="module")
def engine() -> Engine:
    eng = Engine()
    eng.load_path(default_rules_path())
    return eng


def test_declared_rules_exist_and_most_rules_are_simulated() -> None:
    names = {r.name for r in load_catalog()}
    declared = {rule for sc in SCENARIOS.values() for rule in sc.rules}
    assert declared <= names, sorted(declared - names)
    assert len(declared) >= 60


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_triggers_its_rules_and_cleans_up(engine: Engine, name: str) -> None:
    sc = SCENARIOS[name]
    if sc.needs_root and os.geteuid() != 0:
        pytest.skip("creates a network namespace: needs root (CI runs as root)")
    result = run_scenario(sc)
    assert result.status == "ran", result.message
    assert result.paths and not [p for p in result.paths if os.path.lexists(p)]
    for rule, reason in result.skipped_rules.items():
        assert_skip_reason_is_true(rule, reason)
    fired: set[str] = set()
    for expected in result.expected:
        fired.update(engine.match(expected.to_event()).signature)
    missing = set(result.exercised_rules) - fired
    assert not missing, f"{name} did not trigger {sorted(missing)}"


def test_a_failing_scenario_still_cleans_up() -> None:
    created: list[str] = []

    def broken(sb: Sandbox) -> None:
        created.append(str(sb.write_file(sb.path("half-done.txt"), "x")))
        sb.run(["true"])
        raise RuntimeError("step 2 exploded")

    result = run_scenario(Scenario("broken", "fails halfway", ("ExecFromTmp",), broken))
    assert result.status == "failed"
    assert result.message == "RuntimeError: step 2 exploded"
    assert result.exercised_rules == []
    assert len(result.expected) == 2  # what ran before the failure is still reported
    assert created and not os.path.exists(created[0])
    assert not [p for p in result.paths if os.path.lexists(p)]


def test_select_scenarios_keeps_order_and_names_unknown_ones() -> None:
    assert [s.name for s in select_scenarios(["dns", "discovery"])] == ["dns", "discovery"]
    assert len(select_scenarios([])) == len(SCENARIOS)
    with pytest.raises(KeyError, match="unknown simulation\\(s\\): nope, nada"):
        select_scenarios(["discovery", "nope", "nada"])


def test_registered_extra_paths_are_removed_too() -> None:
    def outside(sb: Sandbox) -> None:
        extra = sb.register(Path(f"/dev/shm/{SIM_PREFIX}test-{os.getpid()}"))
        extra.write_text("x")
        sb.run(["true"])

    result = run_scenario(Scenario("outside", "writes to a registered path", (), outside))
    assert result.status == "ran"
    assert f"/dev/shm/{SIM_PREFIX}test-{os.getpid()}" in result.paths
    assert not [p for p in result.paths if os.path.lexists(p)]


def test_a_skipping_scenario_reports_why_and_cleans_up() -> None:
    def skipping(sb: Sandbox) -> None:
        sb.write_file(sb.path("x"), "x")
        raise ScenarioSkipped("needs a tool this host lacks")

    result = run_scenario(Scenario("skipping", "skips", ("ExecFromTmp",), skipping))
    assert (result.status, result.message) == ("skipped", "needs a tool this host lacks")
    assert result.exercised_rules == []
    assert not [p for p in result.paths if os.path.lexists(p)]
