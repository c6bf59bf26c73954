"""Must-show 2: every SigmaHQ regression case fires its rule on its .evtx file, with the full
SigmaHQ rule set loaded at once (so crashes and cross-rule interference show too)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.engine.sigma.evtx_shape import read_evtx
from tests.engine.sigma.reference import matches
from vigil.engine.sigma import SigmaRuleSet, load_sigma

SIGMA = Path("../shared/data/sigma")
CASES = sorted(SIGMA.joinpath("regression_data").rglob("info.yml"))


@cache
def full_rule_set() -> SigmaRuleSet:
    return load_sigma([SIGMA / "rules", SIGMA / "rules-emerging-threats", SIGMA / "rules-threat-hunting"])


def _case_id(info: Path) -> str:
    return info.parent.name


def test_every_case_is_collected() -> None:
    assert len(CASES) == 203


@pytest.mark.parametrize("info", CASES, ids=_case_id)
def test_regression_case_fires_its_rule(info: Path) -> None:
    meta = yaml.safe_load(info.read_text())
    tests = meta.get("regression_tests_info") or []
    expected = {str(r["id"]) for r in meta["rule_metadata"]}
    if not tests:
        # One case (cisco dot1x) ships no log sample: its info.yml comments the test out.
        assert not list(info.parent.glob("*.evtx")) and "cisco" in str(info)
        return
    rules = [r.ir for r in full_rule_set().rules]
    assert expected <= {r.sigma_id for r in rules}, f"rule(s) {expected} did not compile"
    for test in tests:
        assert test["type"] == "evtx"
        evtx = SIGMA / test["path"]
        # Every rule of the full set meets every event: the expected ones must be among those firing.
        fired = {r.sigma_id for event in read_evtx(evtx) for r in rules if matches(r, event)}
        assert expected <= fired, f"{evtx.name}: expected {expected}, fired {sorted(map(str, fired))}"
