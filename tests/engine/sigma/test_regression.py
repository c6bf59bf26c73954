"""Must-show 2: every SigmaHQ regression case fires its rule on its .evtx file, with the full
SigmaHQ rule set loaded at once into one engine (so crashes and cross-rule interference show)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.engine.sigma import reference
from vigil.engine import Engine
from vigil.events.evtx import read_evtx

SIGMA = Path("../shared/data/sigma")
CASES = sorted(SIGMA.joinpath("regression_data").rglob("info.yml"))


@cache
def full_engine() -> Engine:
    """Rules load through the engine's loader registry, as ``vigil scan --rules`` loads them."""
    engine = Engine()
    for directory in ("rules", "rules-emerging-threats", "rules-threat-hunting"):
        engine.load_path(SIGMA / directory)
    engine.compile()
    return engine


def _case_id(info: Path) -> str:
    return info.parent.name


def test_every_case_is_collected_and_the_full_set_is_loaded() -> None:
    assert len(CASES) == 203
    assert len(full_engine().rules) == 3089


@pytest.mark.parametrize("info", CASES, ids=_case_id)
def test_regression_case_fires_its_rule(info: Path) -> None:
    meta = yaml.safe_load(info.read_text())
    tests = meta.get("regression_tests_info") or []
    expected = {str(r["id"]) for r in meta["rule_metadata"]}
    if not tests:
        # One case (cisco dot1x) ships no log sample: its info.yml comments the test out.
        assert not list(info.parent.glob("*.evtx")) and "cisco" in str(info)
        return
    engine = full_engine()
    rules = [r.ir for r in engine.rules if r.ir.sigma_id in expected]
    assert {r.sigma_id for r in rules} == expected, f"rule(s) {expected} did not load"
    for test in tests:
        assert test["type"] == "evtx"
        evtx = SIGMA / test["path"]
        fired: set[str] = set()
        for event in read_evtx(evtx):
            fired.update(engine.match(event).sigma_ids)
            # The reference evaluator of the IR agrees on the expected rules.
            for rule in rules:
                if reference.matches(rule, event):
                    assert rule.sigma_id in engine.match(event).sigma_ids
        assert expected <= fired, f"{evtx.name}: expected {expected}, fired {sorted(fired)}"
