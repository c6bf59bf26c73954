"""The engine's prefilters never change a result: keyword search over the joined event text and
the literal index of indexed buckets agree with the reference evaluator of the IR.

The reference (``tests/engine/sigma/reference.py``) tests every value one by one, with no index,
cache or joined text, so any value-boundary or case-folding slip in a prefilter shows as a
disagreement.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine.sigma import reference
from vigil.engine import Engine, compiler, runtime
from vigil.engine.ir import And, KeywordMatch, Node, Not, Or, RegexMatch, RuleIR, StrMatch
from vigil.engine.runtime import (
    LiteralIndex,
    RegexSet,
    ascii_literal_search,
    json_literals,
    json_safe,
    multiline_safe,
)

ED = ("Event", "EventData")


def _event(data: dict[str, Any]) -> dict[str, Any]:
    return {"Event": {"System": {"Channel": "C", "EventID": "1"}, "EventData": data}}


@contextmanager
def _index_min(value: int) -> Iterator[None]:
    old, compiler.INDEX_MIN = compiler.INDEX_MIN, value
    try:
        yield
    finally:
        compiler.INDEX_MIN = old


def _engine(nodes: list[Node], index_min: int) -> tuple[Engine, list[RuleIR]]:
    rules = [RuleIR(name=f"r{i}", condition=n) for i, n in enumerate(nodes)]
    engine = Engine()
    for rule in rules:
        engine.add_rule(rule)
    with _index_min(index_min):
        engine.compile()
    return engine, rules


def _agree(nodes: list[Node], events: list[dict[str, Any]], index_min: int = 10**9) -> None:
    engine, rules = _engine(nodes, index_min)
    for event in events:
        want = [r.name for r in rules if reference.matches(r, event)]
        assert engine.match(event).signature == want, event


# ---------------------------------------------------------------- keywords over the joined text

TWO_VALUES = _event({"A": "mimi", "B": "katz", "N": 42, "L": ["x", {"deep": "Deep Value"}]})


@pytest.mark.parametrize(
    ("node", "want"),
    [
        (KeywordMatch("contains", "mimi"), True),
        (KeywordMatch("contains", "i\nk"), False),  # only across the separator
        (KeywordMatch("contains", "mimikatz"), False),
        (KeywordMatch("regex", "(?s)mimi.katz"), False),
        (KeywordMatch("regex", "mimi\\s+katz"), False),
        (KeywordMatch("regex", "^katz$"), True),
        (KeywordMatch("regex", "^mimi$"), True),
        (KeywordMatch("regex", "\\bkatz\\b"), True),
        (KeywordMatch("regex", "\\Akatz\\z"), True),  # not prefiltered: \A and \z
        (KeywordMatch("regex", "(?-m:^katz$)"), True),  # not prefiltered: m turned off
        (KeywordMatch("eq", "katz"), True),
        (KeywordMatch("eq", "KATZ"), True),
        (KeywordMatch("eq", "KATZ", ignore_case=False), False),
        (KeywordMatch("startswith", "kat"), True),
        (KeywordMatch("endswith", "imi"), True),
        (KeywordMatch("eq", "42"), False),  # keywords search string values only
        (KeywordMatch("contains", "deep value"), True),  # nested objects and lists
        (KeywordMatch("eq", "x"), True),
        (KeywordMatch("contains", "mimi", scope=("Event", "Nothing")), False),
    ],
)
def test_keyword_values_are_searched_one_by_one(node: Node, want: bool) -> None:
    _agree([node], [TWO_VALUES])
    engine, _ = _engine([node], 10**9)
    assert bool(engine.match(TWO_VALUES).signature) is want


def test_keywords_reach_every_level_of_nesting() -> None:
    deep = {
        "Event": {"Top": ["t", {"a": "one"}], "X": {"Y": {"Z": {"W": ["two", {"V": "three"}]}, "U": "four"}}}
    }
    nodes: list[Node] = [KeywordMatch("eq", v) for v in ("t", "one", "two", "three", "four", "five")]
    _agree(nodes, [deep, {"Event": "t"}, {"Event": ["one", ["two"]]}, {"Event": 5}, {}])
    engine, _ = _engine(nodes, 10**9)
    assert engine.match(deep).signature == ["r0", "r1", "r2", "r3", "r4"]


def test_a_value_with_newlines_keeps_its_own_anchors() -> None:
    event = _event({"A": "line1\nline2", "B": "other"})
    _agree(
        [KeywordMatch("regex", "^line2$"), KeywordMatch("regex", "^line1"), KeywordMatch("regex", "2$")],
        [event],
    )
    engine, _ = _engine([KeywordMatch("regex", "^line2$")], 10**9)
    assert engine.match(event).signature == []  # RE2 without (?m): ^ and $ are the value's ends


def test_lowering_the_joined_text_equals_lowering_each_value() -> None:
    """Final sigma lowers by context: the separator must end the context like a value's end."""
    event = _event({"A": "ΑΣ", "B": "Σx", "C": "İ", "D": "K"})
    nodes: list[Node] = [
        KeywordMatch("contains", "ας"),
        KeywordMatch("eq", "ας"),
        KeywordMatch("startswith", "\u03c3x"),
        KeywordMatch("contains", "i̇"),
        KeywordMatch("eq", "k"),
    ]
    _agree(nodes, [event])
    engine, _ = _engine(nodes, 10**9)
    assert len(engine.match(event).signature) == len(nodes)


def test_surrogates_are_searched_like_single_values() -> None:
    """Lone surrogates (the reference cannot encode them) read as U+FFFD, value by value."""
    event = _event({"A": "\ud800abc", "B": "def\udfff"})
    nodes: list[Node] = [
        KeywordMatch("regex", "^\ufffdabc$"),
        KeywordMatch("regex", "^def\ufffd$"),
        KeywordMatch("regex", "^abc"),
        KeywordMatch("contains", "def"),
    ]
    engine, _ = _engine(nodes, 10**9)
    assert engine.match(event).signature == ["r0", "r1", "r3"]


@pytest.mark.parametrize(
    ("pattern", "safe"),
    [
        ("abc", True),
        ("(?i)a|^b$", True),
        ("(?P<name>a)(?:b)", True),
        ("\\\\A", True),  # an escaped backslash, then a literal A
        ("\\Aabc", False),
        ("abc\\z", False),
        ("(?-m:^a)", False),
        ("(?i-s)a", False),
    ],
)
def test_multiline_safe(pattern: str, safe: bool) -> None:
    assert multiline_safe(pattern) is safe


PIECES = ["mimi", "katz", "\n", " ", "::", "Σ", "ς", "İ", "i", "K", "A", "a", "\\", "$", "^", "ß"]
VALUES = st.lists(st.sampled_from(PIECES), max_size=5).map("".join)
DATA = st.dictionaries(
    st.sampled_from(["A", "B", "C", "D"]), VALUES | st.lists(VALUES, max_size=2), max_size=4
)
KEYWORDS = st.builds(
    KeywordMatch,
    st.sampled_from(["eq", "contains", "startswith", "endswith"]),
    VALUES,
    st.booleans(),
) | st.builds(
    lambda p: KeywordMatch("regex", p, ignore_case=False),
    st.sampled_from(
        [
            "(?i)mimi",
            "^katz",
            "katz$",
            "^a$",
            "(?i)^İ",
            "\\bmimi",
            "mimi\\B",
            "(?s)i.k",
            "a\\nk",
            "^$",
            "(?i:ς)",
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(KEYWORDS, min_size=1, max_size=4), st.lists(DATA, min_size=1, max_size=4))
def test_random_keywords_agree_with_the_reference(nodes: list[Node], data: list[dict[str, Any]]) -> None:
    _agree(nodes, [_event(d) for d in data])


# ---------------------------------------------------------------- keywords over the event's JSON


@pytest.mark.parametrize(
    ("pattern", "safe"),
    [
        ("(?:(?i)dpapi::masterkey)|(?:(?i)\\\\mimilib\\.dll)", True),
        ("(?i:a|b c)|(?s)d", True),
        ("(?:a|(?i)b)", True),
        ("\\\\\\\\srv", True),  # backslashes leading the literal: found after JSON doubles them
        ("", True),
        ("a\\\\b", False),  # a backslash after a character: JSON has a\\b
        ("x(?:\\\\y)", False),
        ('a"b', False),  # JSON escapes the quote
        ("^a", False),
        ("a$", False),
        ("a.b", False),
        ("a+", False),
        ("[ab]", False),
        ("\\d", False),
        ("\\x41", False),
        ("\\bmimi", False),
        ("(a)", False),
        ("(?:a)b(?:c)", False),
        ("(?:a))", False),
        ("(?m)a", False),
        ("é", False),  # ASCII only
    ],
)
def test_json_safe(pattern: str, safe: bool) -> None:
    assert json_safe(pattern) is safe


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        ("(?:(?i)dpapi::masterkey)|(?:(?i)\\\\mimilib\\.dll)", ["dpapi::masterkey", "\\mimilib.dll"]),
        ("(?i:a|b c)|(?s)d", ["a", "b c", "d"]),
        ("(?:a|(?i)b)", ["a", "b"]),
        ("\\\\\\\\srv", ["\\\\srv"]),
        ("x\\-y\\ z", ["x-y z"]),
        ("", [""]),
        ("a\\\\b", None),
        ("a.b", None),
        ("é", None),
    ],
)
def test_json_literals_are_the_texts_the_alternatives_match(pattern: str, literals: list[str] | None) -> None:
    assert json_literals(pattern) == literals
    assert json_safe(pattern) is (literals is not None)


def test_ascii_literal_search_finds_any_lowered_literal() -> None:
    search = ascii_literal_search(["Kiwi Legit", "sekurlsa::", "\\mimi"])
    assert search is not None
    assert search(b'{"a":"x kiwi legit y"}')
    assert search(b'{"a":"c:\\\\mimilib"}')
    assert search(b'{"a":"sekurlsa:","b":":"}') == []
    assert ascii_literal_search(["a", ""]) is None  # an empty literal is in every text
    assert ascii_literal_search(["\u212aiwi"]) is None
    assert ascii_literal_search([]) is None


def test_json_keywords_on_ascii_and_other_events_agree_with_the_reference() -> None:
    """ASCII JSON takes the Aho-Corasick search of the lowered text, other JSON the RE2 search: a
    case-sensitive alternative found only lowered, and the Kelvin sign and long s, which RE2 folds
    into k and s, come out as the reference says."""
    nodes: list[Node] = [
        KeywordMatch("regex", "(?:Mimi)|(?:(?i)katz)", ignore_case=False),
        KeywordMatch("regex", "(?i)sekurlsa::|(?i)kiwi", ignore_case=False),
    ]
    events = [
        _event({"A": "mimi", "B": "x"}),  # found lowered, not confirmed: Mimi is case-sensitive
        _event({"A": "a Mimi b"}),
        _event({"A": "KATZ", "B": "SEKURLSA::"}),
        _event({"A": "\u212aIWI"}),  # not ASCII: RE2 folds the Kelvin sign into k
        _event({"A": "\u017fekurl\u017fa::", "B": "é"}),
        _event({"A": "ki", "B": "wi"}),  # never across two values
    ]
    assert [bool(runtime.keyword_matcher(n.op, n.value, False)) for n in nodes] == [True, True]
    _agree(nodes, events)
    engine, _ = _engine(nodes, 10**9)
    assert [engine.match(e).signature for e in events] == [[], ["r0"], ["r0", "r1"], ["r1"], ["r1"], []]


JSON_PIECES = [
    "mimi",
    "katz",
    "::",
    "\\",
    ".",
    "a",
    "S",
    "s",
    "\u017f",
    "K",
    "\u212a",
    '"',
    "\n",
    "\x01",
    "é",
    "A",
]
JSON_VALUES = st.lists(st.sampled_from(JSON_PIECES), max_size=5).map("".join)
JSON_DATA = st.dictionaries(
    st.sampled_from(["A", "mimi", "katz", "S"]),
    JSON_VALUES | st.lists(JSON_VALUES, max_size=2) | st.integers() | st.none(),
    max_size=4,
)
LITERAL_PIECES = ["mimi", "katz", "::", "\\.", "a", "s", "k", " ", "A"]
JSON_KEYWORDS = st.builds(
    lambda alts, lead, case: KeywordMatch(
        "regex", "|".join(f"(?:(?i){lead}{a})" if case else f"(?:{lead}{a})" for a in alts), ignore_case=False
    ),
    st.lists(
        st.lists(st.sampled_from(LITERAL_PIECES), min_size=1, max_size=3).map("".join), min_size=1, max_size=3
    ),
    st.sampled_from(["", "\\\\"]),
    st.booleans(),
) | st.builds(
    lambda a, case: KeywordMatch("regex", ("(?i)" if case else "") + a, ignore_case=False),
    st.lists(st.sampled_from(LITERAL_PIECES), min_size=1, max_size=3).map("".join),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(JSON_KEYWORDS, min_size=1, max_size=4), st.lists(JSON_DATA, min_size=1, max_size=4))
def test_json_prefiltered_keywords_agree_with_the_reference(
    nodes: list[Node], data: list[dict[str, Any]]
) -> None:
    """Escaped quotes and backslashes, control characters, the Kelvin sign and long s (RE2 folds
    them into k and s), keys equal to a keyword, numbers and nulls: the same matches."""
    for node in nodes:
        assert isinstance(node, KeywordMatch) and json_safe(node.value)
    _agree(nodes, [_event(d) for d in data])


def test_keywords_of_an_event_json_cannot_encode_fall_back_to_the_values() -> None:
    """Lone surrogates and integers beyond 64 bits make orjson fail: the joined values are searched."""
    nodes: list[Node] = [KeywordMatch("regex", "(?:(?i)abc)|(?:(?i)xyz)"), KeywordMatch("regex", "(?i)def")]
    engine, _ = _engine(nodes, 10**9)
    assert engine.match(_event({"A": "\ud800ABC", "B": "x"})).signature == ["r0"]
    assert engine.match(_event({"A": "dEf", "N": 1 << 70})).signature == ["r1"]
    assert engine.match(_event({"A": "ab", "B": "c", "N": 1 << 70})).signature == []


# ---------------------------------------------------------------- literal index of indexed buckets


def test_literal_index_lookups() -> None:
    index = LiteralIndex(
        [("eq", "a.exe", 1), ("endswith", "\\a.exe", 2), ("startswith", "c:\\", 3), ("endswith", ".exe", 4)]
    )
    assert index("c:\\a.exe") == {2, 3, 4}
    assert index("a.exe") == {1, 4}
    assert index("b") == set()
    assert index(None) == set()
    assert index("c:\\a.exe") == {2, 3, 4}  # cached


def test_literal_index_rejects_empty_affixes() -> None:
    with pytest.raises(ValueError, match="empty prefix or suffix"):
        LiteralIndex([("endswith", "", 1)])


IMAGE = (*ED, "Image")
CMD = (*ED, "CommandLine")
LITERALS = st.builds(
    StrMatch,
    st.sampled_from([IMAGE, CMD]),
    st.sampled_from(["eq", "startswith", "endswith", "contains"]),
    VALUES,
    st.booleans(),
)
LEAVES = LITERALS | st.builds(
    RegexMatch, st.sampled_from([IMAGE, CMD]), st.sampled_from(["(?i)mimi", "^katz", "a$", "(?is:i.k)"])
)
CONDITIONS = st.recursive(
    LEAVES,
    lambda kids: (
        st.builds(lambda c: And(tuple(c)), st.lists(kids, min_size=1, max_size=3))
        | st.builds(lambda c: Or(tuple(c)), st.lists(kids, min_size=1, max_size=3))
        | st.builds(Not, kids)
    ),
    max_leaves=6,
)
FIELDS = st.fixed_dictionaries({}, optional={"Image": VALUES, "CommandLine": VALUES})


@settings(max_examples=300, deadline=None)
@given(st.lists(CONDITIONS, min_size=1, max_size=8), st.lists(FIELDS, min_size=1, max_size=4))
def test_indexed_buckets_agree_with_the_reference(nodes: list[Node], data: list[dict[str, Any]]) -> None:
    events = [_event(d) for d in data]
    _agree(nodes, events, index_min=0)
    _agree(nodes, events, index_min=10**9)


# ---------------------------------------------------------------- merged `or` of literals, inline fields

SYSTEM_ID = ("Event", "System", "EventID")


def test_merged_literal_alternatives_and_inline_fields_agree_with_the_reference() -> None:
    """Equalities/prefixes/suffixes of one field OR-ed become one test; fields are read inline."""
    nodes: list[Node] = [
        Or(
            (
                StrMatch(SYSTEM_ID, "eq", "1"),
                StrMatch(SYSTEM_ID, "eq", "4"),
                StrMatch((*SYSTEM_ID, "Value"), "eq", "4"),
                StrMatch((*SYSTEM_ID, "Value"), "eq", "5"),
            )
        ),
        Or(
            (
                StrMatch(IMAGE, "endswith", "\\CMD.exe", True),
                RegexMatch(CMD, "^katz"),
                StrMatch(IMAGE, "endswith", ".ps1", True),
                StrMatch(IMAGE, "eq", "Mimi", True),
                StrMatch(IMAGE, "eq", "mimi", True),
                StrMatch(IMAGE, "endswith", ".PS1", False),
                StrMatch(IMAGE, "startswith", "", False),
            )
        ),
        And(
            (StrMatch(CMD, "contains", "x"), Not(Or((StrMatch(CMD, "eq", "ax"), StrMatch(CMD, "eq", "xb")))))
        ),
        Or((StrMatch(("Event", "System"), "eq", "a"), StrMatch(("Event", "System"), "eq", "b"))),
        Or(
            (
                StrMatch((*ED, "Deep", "Key"), "startswith", "ab"),
                StrMatch((*ED, "Deep", "Key"), "startswith", "x"),
            )
        ),
    ]
    events: list[Any] = [
        _event({"Image": "C:\\Windows\\cmd.EXE", "CommandLine": "ax"}),
        _event({"Image": "MIMI", "CommandLine": "katz xb"}),
        _event({"Image": "a.PS1", "CommandLine": "x", "Deep": {"Key": "abc"}}),
        _event({"Image": None, "CommandLine": 5, "Deep": "abc"}),
        _event({"Image": ["x.ps1"], "Deep": {"Key": 7}}),
        {"Event": {"System": {"Channel": "C", "EventID": 4}, "EventData": {"Image": "x.ps1"}}},
        {"Event": {"System": {"Channel": "C", "EventID": {"Value": "4"}}, "EventData": {}}},
        {"Event": {"System": {"Channel": "C", "EventID": {"Value": 5}}}},
        {"Event": {"System": "a", "EventData": {"Image": "mimi"}}},
        {"Event": {"EventData": {"Image": "mimi"}}},
        {"Event": "x"},
        {},
    ]
    _agree(nodes, events)
    _agree(nodes, events, index_min=0)


def test_json_prefiltered_keywords_examples() -> None:
    nodes: list[Node] = [
        KeywordMatch("regex", "(?:(?i)\\\\mimilib\\.dll)|(?:(?i)sekurlsa::)", ignore_case=False),
        KeywordMatch("regex", "(?i)kiwi", ignore_case=False),
        KeywordMatch("regex", "mimi", ignore_case=False),
    ]
    assert all(json_safe(n.value) for n in nodes if isinstance(n, KeywordMatch))
    engine, _ = _engine(nodes, 10**9)
    events = [
        _event({"A": 'C:\\Windows\\"MIMILIB.DLL', "B": 'say "mimi"\n'}),  # quote before: not r0
        _event({"A": "C:\\Windows\\MIMILIB.DLL"}),
        _event({"A": "\u212aIWI", "mimi": 5}),  # Kelvin sign folds to k; a key is not a value
        _event({"A": "SEKURLSA\u017f::", "B": ["x", {"C": "SEKURLSA::logonpasswords"}]}),
    ]
    assert [engine.match(e).signature for e in events] == [["r2"], ["r0"], ["r1"], ["r0"]]
    _agree(nodes, events)


# ---------------------------------------------------------------- large regex sets (FilteredRE2)

FILTER_PATTERNS = [
    *(f"(?i)word{i}\\.exe" for i in range(60)),
    *(f"(?is:.*\\\\tool{i}\\s+-[a-z]+)" for i in range(40)),
    "(?i)\u212aelvin",  # folds k: the atom search must find "KELVIN" and "\u212aelvin" alike
    "\\d{3,}",  # no literal atom: always tried
    "^a",
    "z$",
    "(?s)x.y",
    "(?i)ﬀ|straße",
    "a?",
    "",
    "[[:alpha:]]{40}",
    "(?i)(?:cmd|powershell)\\.exe.*-enc",
]
FILTER_TEXTS = [
    "",
    "a",
    "xz",
    "x\ny",
    "WORD7.EXE and Word59.exe",
    "c:\\TOOL3  -abc",
    "KELVIN",
    "\u212aelvin",
    "12 345",
    "STRASSE straße",
    "PowerShell.EXE -nop -ENC abc",
    "b" * 45,
    "word60.exe tool40 -x",
    "é\u0000\uffff",
]


def test_large_sets_find_exactly_what_each_pattern_finds() -> None:
    assert len(FILTER_PATTERNS) >= runtime.FILTER_MIN
    found = RegexSet(FILTER_PATTERNS)
    singles = [re2.compile(p) for p in FILTER_PATTERNS]
    for text in FILTER_TEXTS:
        want = {i for i, rx in enumerate(singles) if rx.search(text) is not None}
        assert found(text) == want, text
        assert found(text) == want, text  # cached
    assert found(None) == set()
