"""Property tests: malformed rules and conditions never crash; compiled conditions equal gene's walk."""

from __future__ import annotations

import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.engine import Engine, RuleLoadError
from vigil.engine.gene.condition import ConditionCrash, evaluate, parse

TOKENS = [
    "$a",
    "$b",
    "$c",
    "and",
    "or",
    "&&",
    "||",
    "AND",
    "OR",
    "!",
    "(",
    ")",
    "!(",
    "$a)",
    "(!$b",
    "not",
    " ",
    "",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=14))
def test_random_conditions_load_or_fail_cleanly_and_match_like_gene(tokens: list[str]) -> None:
    cond = " ".join(tokens)
    rule = {
        "Name": "r",
        "Meta": {"Schema": "2.0.0"},
        "Matches": [f"{op}: {op[1:]} = '1'" for op in ("$a", "$b", "$c")],
    }
    engine = Engine()
    try:
        engine.load_text(json.dumps(dict(rule, Condition=cond)))
    except RuleLoadError as err:
        assert err.errors[0].rule == "r" and err.errors[0].statement == cond
        return
    elements = parse(cond, {"$a": 1, "$b": 1, "$c": 1})
    for bits in itertools.product((False, True), repeat=3):
        values = dict(zip(("$a", "$b", "$c"), bits, strict=True))
        try:
            want = evaluate(elements, values.__getitem__) if elements else True
        except ConditionCrash:  # pragma: no cover - loaded conditions never crash
            raise AssertionError(f"{cond!r} loaded although gene crashes on {values}") from None
        data = {k[1:]: "1" if v else "0" for k, v in values.items()}
        assert (engine.match({"Event": {"EventData": data}}).signature == ["r"]) is want, (cond, values)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
KEYS = st.sampled_from(
    ["Name", "name", "Tags", "Meta", "Matches", "Condition", "Actions", "Schema", "Events", "x"]
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS, JSON_VALUES, max_size=6), st.dictionaries(KEYS, JSON_VALUES, max_size=4))
def test_random_rule_objects_never_crash(rule: dict[str, object], meta: dict[str, object]) -> None:
    rule = dict(rule, Meta=dict(meta, Schema="2.0.0")) if "Meta" in rule else rule
    engine = Engine()
    try:
        engine.load_text(json.dumps(rule), "fuzz.gen")
    except RuleLoadError as err:
        assert all(e.file == "fuzz.gen" and e.line == 1 and e.message for e in err.errors)
        return
    engine.match({"Event": {"EventData": {"A": "1"}, "System": {"Channel": "x", "EventID": 1}}})


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_random_match_statements_never_crash(statement: str) -> None:
    engine = Engine()
    engine.add_container("c", ["x"])
    rule = {"Name": "r", "Meta": {"Schema": "2.0.0"}, "Matches": [statement], "Condition": "$a"}
    try:
        engine.load_text(json.dumps(rule))
    except RuleLoadError as err:
        assert err.errors[0].rule == "r"
        return
    engine.match({"Event": {"EventData": {"A": "1", "Hashes": "MD5=AB"}}})


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_random_events_never_crash(event: object) -> None:
    engine = Engine()
    engine.load_text(
        json.dumps({"Name": "r", "Meta": {"Schema": "2.0.0"}, "Matches": ["$a: A ~= 'x'"], "Condition": "$a"})
    )
    for ev in (event, {"Event": event}, {"Event": {"System": event, "EventData": event}}):
        engine.scan(ev)
