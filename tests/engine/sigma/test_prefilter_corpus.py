"""Differential test of the engine's prefilters on real rules and events: the full SigmaHQ rule set
(rules, emerging threats, threat hunting) over the whole EVTX corpus and the regression samples.

* Indexed buckets (candidates from each rule's required regex and literal tests) give the same
  (event, rule) matches as linear buckets, which test every rule of the bucket.
* Large regex sets searched through their literal atoms (RE2's FilteredRE2) give the same matches
  as one RE2 Set of all their patterns.
* Rules with keywords (searched over the joined event text or, for literal alternations, over the
  event's JSON first) match exactly the events the reference evaluator, which tests each value on
  its own, says they match.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.engine.sigma import reference
from vigil.engine import Engine, compiler, runtime
from vigil.engine.ir import And, KeywordMatch, Node, Not, Or
from vigil.engine.runtime import json_safe
from vigil.events.evtx import read_evtx

SIGMA = Path("../shared/data/sigma")
CORPORA = (Path("../shared/data/evtx"), SIGMA / "regression_data")


def _events() -> list[dict[str, Any]]:
    files = sorted(f for root in CORPORA for f in root.rglob("*.evtx"))
    assert len(files) > 500
    return [e for f in files for e in read_evtx(f, on_error=lambda err: None)]


def _matches(
    engine: Engine, events: list[dict[str, Any]], index_min: int, filter_min: int | None = None
) -> set[tuple[int, str]]:
    old, compiler.INDEX_MIN = compiler.INDEX_MIN, index_min
    old_filter = runtime.FILTER_MIN
    if filter_min is not None:
        runtime.FILTER_MIN = filter_min
    try:
        engine.compile(lazy=False)  # the regex sets are built now, with ``filter_min``
    finally:
        compiler.INDEX_MIN = old
        runtime.FILTER_MIN = old_filter
    return {(n, name) for n, event in enumerate(events) for name in engine.match(event).signature}


def _nodes(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, (And, Or)):
        for child in node.children:
            yield from _nodes(child)
    elif isinstance(node, Not):
        yield from _nodes(node.child)


def test_prefilters_change_no_match_on_the_full_rule_set_and_corpus() -> None:
    engine = Engine()
    for directory in ("rules", "rules-emerging-threats", "rules-threat-hunting"):
        engine.load_path(SIGMA / directory)
    events = _events()

    indexed = _matches(engine, events, compiler.INDEX_MIN)
    linear = _matches(engine, events, 10**9)
    assert len(indexed) > 5000  # the corpus does exercise the rules
    assert indexed == linear
    assert _matches(engine, events, compiler.INDEX_MIN, filter_min=10**9) == indexed  # Sets only

    keyword_rules = [
        r.ir for r in engine.rules if any(isinstance(n, KeywordMatch) for n in _nodes(r.ir.condition))
    ]
    assert len(keyword_rules) >= 10
    names = {r.name for r in keyword_rules}
    via_json = {
        r.name
        for r in keyword_rules
        for n in _nodes(r.condition)
        if isinstance(n, KeywordMatch) and n.op == "regex" and json_safe(n.value)
    }
    assert "Mimikatz Use" in via_json and len(via_json) < len(names)  # both keyword paths are exercised
    want = {
        (n, r.name) for n, event in enumerate(events) for r in keyword_rules if reference.matches(r, event)
    }
    assert want  # some keyword rules fire on the corpus (Mimikatz, Zerologon, ...)
    assert {m for m in indexed if m[1] in names} == want
