"""Every IR node kind compiles to generated Python with the documented semantics."""

from __future__ import annotations

import math
from typing import Any

import pytest

from vigil.engine import Engine, runtime
from vigil.engine.ir import (
    And,
    CidrMatch,
    Const,
    ContainerMatch,
    Exists,
    FieldRefMatch,
    FlagMatch,
    KeywordMatch,
    Node,
    Not,
    NumCmp,
    Or,
    RegexMatch,
    RuleIR,
    StrMatch,
)
from vigil.events.fields import go_str

ED = ("Event", "EventData")
EVENT: dict[str, Any] = {
    "Event": {
        "EventData": {
            "Image": "C:\\Windows\\System32\\cmd.exe",
            "Other": "C:\\Windows\\System32\\cmd.exe",
            "Lower": "c:\\windows\\system32\\cmd.exe",
            "Num": 42,
            "Big": 1234567,
            "Oct": "010",
            "Hex": "0x1F",
            "Neg": "-5",
            "Sp": " 5",
            "Nul": None,
            "Bool": True,
            "Obj": {"x": "1"},
            "Hashes": "SHA1=AB,MD5=CD",
            "Ip4": "10.1.2.3",
            "Ip6": "fe80::1",
            "Empty": "",
        },
        "System": {"Channel": "C", "EventID": "1", "Computer": "HOST"},
        "UserData": {"Note": "Needle in a HAYSTACK"},
    }
}


def f(name: str) -> tuple[str, ...]:
    return (*ED, name)


def matches(
    node: Node, event: dict[str, Any] | None = None, containers: dict[str, list[str]] | None = None
) -> bool:
    engine = Engine()
    for name, values in (containers or {}).items():
        engine.add_container(name, values)
    engine.add_rule(RuleIR(name="r", condition=node))
    got = engine.match(event or EVENT).signature == ["r"]
    # The same rule in an indexed bucket (candidates from its required tests) agrees.
    from vigil.engine import compiler

    old, compiler.INDEX_MIN = compiler.INDEX_MIN, 0
    try:
        engine.compile()
        indexed = engine.match(event or EVENT).signature == ["r"]
    finally:
        compiler.INDEX_MIN = old
    assert indexed == got, f"indexed bucket disagrees on {node!r}"
    return got


@pytest.mark.parametrize(
    ("node", "want"),
    [
        (StrMatch(f("Image"), "eq", "C:\\Windows\\System32\\cmd.exe"), True),
        (StrMatch(f("Image"), "eq", "c:\\windows\\system32\\cmd.exe"), False),
        (StrMatch(f("Image"), "eq", "c:\\windows\\system32\\cmd.exe", ignore_case=True), True),
        (StrMatch(f("Image"), "contains", "System32"), True),
        (StrMatch(f("Image"), "contains", "system32"), False),
        (StrMatch(f("Image"), "contains", "SYSTEM32", ignore_case=True), True),
        (StrMatch(f("Image"), "startswith", "C:\\"), True),
        (StrMatch(f("Image"), "startswith", "c:\\", ignore_case=True), True),
        (StrMatch(f("Image"), "endswith", "cmd.exe"), True),
        (StrMatch(f("Image"), "endswith", "CMD.EXE"), False),
        (StrMatch(f("Image"), "endswith", "CMD.EXE", ignore_case=True), True),
        (StrMatch(f("Missing"), "eq", ""), False),
        (StrMatch(f("Missing"), "contains", ""), False),
        (StrMatch(f("Empty"), "eq", ""), True),
        (StrMatch(f("Num"), "eq", "42"), True),
        (StrMatch(f("Big"), "eq", "1.234567e+06"), True),
        (StrMatch(f("Nul"), "eq", "<nil>"), True),
        (StrMatch(f("Bool"), "eq", "true"), True),
        (StrMatch(("Event", "EventData", "Obj", "x"), "eq", "1"), True),
        (StrMatch(("Event", "System", "Computer"), "eq", "HOST"), True),
    ],
)
def test_str_match(node: Node, want: bool) -> None:
    assert matches(node) is want


@pytest.mark.parametrize(
    ("pattern", "want"),
    [
        ("(?i:\\\\CMD\\.EXE$)", True),
        ("cmd\\.exe$", True),
        ("^cmd", False),
        ("\\pL", True),
        ("[[:alpha:]]", True),
    ],
)
def test_regex_match(pattern: str, want: bool) -> None:
    assert matches(RegexMatch(f("Image"), pattern)) is want


def test_regex_missing_field_is_false() -> None:
    assert not matches(RegexMatch(f("Missing"), ".*"))


def test_regex_large_repetition_uses_single_matcher() -> None:
    long_event = {"Event": {"EventData": {"CommandLine": "x" * 1000}}}
    assert matches(RegexMatch(f("CommandLine"), "(.{999,})"), long_event)
    assert not matches(
        RegexMatch(f("CommandLine"), "(.{999,})"), {"Event": {"EventData": {"CommandLine": "x" * 998}}}
    )


def test_regexes_on_one_field_share_a_set_and_agree() -> None:
    engine = Engine()
    patterns = ["cmd", "^C:", "powershell", "(?i)SYSTEM32", "exe$", "zzz"]
    for i, p in enumerate(patterns):
        engine.add_rule(RuleIR(name=f"r{i}", condition=RegexMatch(f("Image"), p)))
    assert engine.match(EVENT).signature == ["r0", "r1", "r3", "r4"]


@pytest.mark.parametrize(
    ("node", "want"),
    [
        (NumCmp(f("Num"), ">", 41.0), True),
        (NumCmp(f("Num"), "<", 41.0), False),
        (NumCmp(f("Num"), ">=", 42.0), True),
        (NumCmp(f("Num"), "<=", 42.0), True),
        (NumCmp(f("Oct"), ">", 9.0), False),  # Go base 0: "010" is 8
        (NumCmp(f("Oct"), ">", 9.0, "plain"), True),  # plain decimal: 10
        (NumCmp(f("Hex"), ">=", 31.0), True),
        (NumCmp(f("Hex"), ">=", 31.0, "plain"), False),
        (NumCmp(f("Neg"), "<", 0.0), True),
        (NumCmp(f("Sp"), ">", 4.0), False),  # Go refuses whitespace
        (NumCmp(f("Image"), "<", math.inf), False),
        (NumCmp(f("Missing"), "<", math.inf), False),
        (NumCmp(f("Num"), "<", math.inf), True),
    ],
)
def test_num_cmp(node: Node, want: bool) -> None:
    assert matches(node) is want


@pytest.mark.parametrize(
    ("node", "want"),
    [
        (FlagMatch(f("Hex"), 0x10), True),
        (FlagMatch(f("Hex"), 0x20), False),
        (FlagMatch(f("Num"), 42), True),
        (FlagMatch(f("Num"), 1), False),
        (FlagMatch(f("Image"), 0), False),  # unparsable field
        (FlagMatch(f("Neg"), 0), True),  # &= 0 holds for any parsable value
    ],
)
def test_flag_match(node: Node, want: bool) -> None:
    assert matches(node) is want


@pytest.mark.parametrize(
    ("node", "want"),
    [
        (FieldRefMatch(f("Image"), f("Other")), True),
        (FieldRefMatch(f("Image"), f("Lower")), False),
        (FieldRefMatch(f("Image"), f("Lower"), ignore_case=True), True),
        (FieldRefMatch(f("Image"), f("Missing")), False),
        (FieldRefMatch(f("Missing"), f("Missing")), False),
        (FieldRefMatch(f("Image"), f("Empty"), "contains"), True),
        (FieldRefMatch(f("Image"), f("Other"), "startswith"), True),
        (FieldRefMatch(f("Image"), f("Lower"), "endswith", ignore_case=True), True),
        (FieldRefMatch(f("Num"), f("Num")), True),
    ],
)
def test_field_ref_match(node: Node, want: bool) -> None:
    assert matches(node) is want


def test_container_match() -> None:
    node = ContainerMatch(f("Hashes"), "MD5=(?P<md5>[A-F0-9]+)", "md5", "iocs")
    assert matches(node, containers={"iocs": ["CD"]})  # values are lower-cased on insert and lookup
    assert not matches(node, containers={"iocs": ["ab"]})
    assert not matches(node)  # unknown container
    optional = ContainerMatch(f("Hashes"), "(?P<x>Z)?SHA1", "x", "iocs")
    assert matches(optional, containers={"iocs": [""]})  # group did not take part: ""


def test_container_added_after_compile_is_seen() -> None:
    engine = Engine()
    engine.add_rule(
        RuleIR(name="r", condition=ContainerMatch(f("Hashes"), "SHA1=(?P<h>[A-F0-9]+)", "h", "c"))
    )
    assert engine.match(EVENT).signature == []
    engine.add_container("c", ["ab"])
    assert engine.match(EVENT).signature == ["r"]


@pytest.mark.parametrize(
    ("node", "want"),
    [
        (Exists(f("Image")), True),
        (Exists(f("Nul")), True),  # null is present
        (Exists(f("Missing")), False),
        (Exists(f("Missing"), present=False), True),
        (Exists(f("Image"), present=False), False),
    ],
)
def test_exists(node: Node, want: bool) -> None:
    assert matches(node) is want


@pytest.mark.parametrize(
    ("node", "want"),
    [
        (CidrMatch(f("Ip4"), ("10.0.0.0/8",)), True),
        (CidrMatch(f("Ip4"), ("192.168.0.0/16", "10.1.2.0/24")), True),
        (CidrMatch(f("Ip4"), ("192.168.0.0/16",)), False),
        (CidrMatch(f("Ip6"), ("fe80::/10",)), True),
        (CidrMatch(f("Ip6"), ("10.0.0.0/8",)), False),
        (CidrMatch(f("Image"), ("0.0.0.0/0",)), False),
        (CidrMatch(f("Missing"), ("0.0.0.0/0",)), False),
    ],
)
def test_cidr_match(node: Node, want: bool) -> None:
    assert matches(node) is want


@pytest.mark.parametrize(
    ("node", "want"),
    [
        (KeywordMatch("contains", "haystack"), True),
        (KeywordMatch("contains", "haystack", ignore_case=False), False),
        (KeywordMatch("contains", "HAYSTACK", ignore_case=False), True),
        (KeywordMatch("eq", "host"), True),
        (KeywordMatch("startswith", "needle"), True),
        (KeywordMatch("endswith", "cmd.exe"), True),
        (KeywordMatch("regex", "^needle.*stack$"), True),
        (KeywordMatch("contains", "haystack", scope=("Event", "EventData")), False),
        (KeywordMatch("contains", "nothing like it"), False),
    ],
)
def test_keyword_match(node: Node, want: bool) -> None:
    assert matches(node) is want


T = StrMatch(f("Image"), "contains", "cmd")
F = StrMatch(f("Image"), "contains", "nope")


@pytest.mark.parametrize(
    ("node", "want"),
    [
        (Not(T), False),
        (Not(F), True),
        (And((T, T)), True),
        (And((T, F)), False),
        (Or((F, T)), True),
        (Or((F, F)), False),
        (And(()), True),
        (Or(()), False),
        (Const(True), True),
        (Const(False), False),
        (Or((And((T, Not(F))), F)), True),
    ],
)
def test_boolean_nodes(node: Node, want: bool) -> None:
    assert matches(node) is want


def test_meta_filter_by_channel_and_event_id() -> None:
    engine = Engine()
    engine.add_rule(RuleIR(name="exact", condition=Const(True), events=(("C", (1, 2)),)))
    engine.add_rule(RuleIR(name="anyid", condition=Const(True), events=(("C", ()),)))
    engine.add_rule(RuleIR(name="other", condition=Const(True), events=(("D", (1,)),)))
    engine.add_rule(RuleIR(name="all", condition=Const(True)))
    engine.add_rule(RuleIR(name="host", condition=Const(True), computers=("HOST",)))
    engine.add_rule(RuleIR(name="zero", condition=Const(True), events=(("C", (0,)),)))

    def sig(system: dict[str, Any]) -> list[str]:
        return engine.match({"Event": {"System": system}}).signature

    assert sig({"Channel": "C", "EventID": "1", "Computer": "HOST"}) == ["exact", "anyid", "all", "host"]
    assert sig({"Channel": "C", "EventID": 2}) == ["exact", "anyid", "all"]
    assert sig({"Channel": "C", "EventID": "3"}) == ["anyid", "all"]
    assert sig({"Channel": "C", "EventID": "0x1"}) == ["exact", "anyid", "all"]
    assert sig({"Channel": "C"}) == ["anyid", "all", "zero"]  # missing EventID parses as 0
    assert sig({"Channel": "C", "EventID": " 1"}) == ["anyid", "all", "zero"]
    assert sig({"Channel": "c", "EventID": "1"}) == ["all"]  # channels are case-sensitive
    assert engine.match("not an event").signature == ["all"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "node",
    [
        RegexMatch(f("Image"), "a{1001}"),
        RegexMatch(f("Image"), "(?<=x)y"),
        And((T, Not(RegexMatch(f("Image"), "(")))),
        KeywordMatch("regex", "["),
        ContainerMatch(f("Hashes"), "MD5=(?P<md5>.*)", "sha1", "c"),
        CidrMatch(f("Ip4"), ("10.0.0.0/33",)),
    ],
)
def test_add_rule_rejects_nodes_that_cannot_compile(node: Node) -> None:
    from vigil.engine import RuleLoadError
    from vigil.engine.ir import SourceLocation

    engine = Engine()
    with pytest.raises(RuleLoadError) as info:
        engine.add_rule(RuleIR(name="bad", condition=node, source=SourceLocation("x.yml", 3)))
    err = info.value.errors[0]
    assert (err.file, err.line, err.rule) == ("x.yml", 3, "bad")
    assert engine.rules == []
    assert engine.match(EVENT).signature == []


def test_add_rule_duplicate_name() -> None:
    from vigil.engine import RuleLoadError

    engine = Engine()
    engine.add_rule(RuleIR(name="r", condition=Const(True)))
    with pytest.raises(RuleLoadError, match="already exists"):
        engine.add_rule(RuleIR(name="r", condition=Const(True)))


def test_required_tests() -> None:
    from vigil.engine.compiler import required_tests

    a, b, c = (RegexMatch(f("Image"), p) for p in ("a", "b", "c"))
    assert required_tests(a) == {a}
    assert required_tests(And((T, a, Or((b, c))))) == {a}
    assert required_tests(Or((a, And((b, T))))) == {a, b}
    assert required_tests(Or((a, T))) is None  # T is a contains test: no literal to look up
    assert required_tests(Not(a)) is None
    assert required_tests(And((T, Not(a)))) is None
    eq = StrMatch(f("Image"), "eq", "x")
    ends = StrMatch(f("Image"), "endswith", "\\cmd.exe", ignore_case=True)
    empty = StrMatch(f("Image"), "endswith", "")
    system = StrMatch(("Event", "System", "EventID"), "eq", "1")
    assert required_tests(Or((eq, ends))) == {eq, ends}
    assert required_tests(empty) is None  # an empty suffix holds for every value
    assert required_tests(And((a, ends))) == {ends}  # a literal lookup before a regex
    assert required_tests(And((system, a))) == {a}  # EventID is shared by the whole bucket
    assert required_tests(Or((a, NumCmp(f("Pid"), ">", 1)))) is None
    assert required_tests(RegexMatch(f("Image"), "a{1000}b{1000}")) is None  # too big for a set


def test_deeply_nested_trees_compile() -> None:
    """Python's parser allows 200 nested parentheses: deep sub-trees become helper functions."""
    node: Node = RegexMatch(f("Image"), "cmd")
    for i in range(600):
        node = And((Not(node), Const(True))) if i % 2 else Or((Not(node), Const(False)))
    assert matches(node)  # 600 negations
    assert not matches(Not(node))


def test_deeply_nested_gene_condition() -> None:
    import json

    engine = Engine()
    cond = "!(" * 151 + "$a" + ")" * 151
    engine.load_text(
        json.dumps(
            {"Name": "deep", "Meta": {"Schema": "2.0.0"}, "Matches": ["$a: A = '1'"], "Condition": cond}
        )
    )
    assert engine.match({"Event": {"EventData": {"A": "1"}}}).signature == []
    assert engine.match({"Event": {"EventData": {"A": "0"}}}).signature == ["deep"]


@pytest.mark.parametrize(
    "value",
    [
        {"Qualifiers": "0", "Value": "4"},
        {"Value": "4", "Qualifiers": "0"},
        {"Value": 1},
        {"Value": True},
        {"Value": 1.0},
        {"Value": "1"},
        ["a", "b c"],
        [1, True, 1.0, "1"],
        [True],
        [1],
        [],
        {},
        None,
        7,
        {"Value": {"Deep": "x"}},
    ],
)
def test_value_text_is_go_str_memoised(value: Any) -> None:
    """Strings-only objects and lists are memoised by their strings: ``1``, ``1.0`` and ``True``
    (equal as keys) still render as Go does."""
    for _ in range(2):
        assert runtime.value_text(value) == go_str(value)


def test_an_event_id_object_dispatches_and_matches_by_its_text() -> None:
    """EventID as an object ({"Qualifiers", "Value"}): dispatched as gene reads it (ParseInt of its
    %v text, which fails: 0), and its fields read as text, the same on every event."""
    engine = Engine()
    engine.add_rule(
        RuleIR(
            name="r",
            condition=StrMatch(("Event", "System", "EventID", "Value"), "eq", "1337"),
            events=(("C", (0,)),),
        )
    )
    engine.add_rule(
        RuleIR(
            name="m", condition=StrMatch(("Event", "System", "EventID"), "eq", "map[Qualifiers:0 Value:1337]")
        )
    )
    for _ in range(2):
        event = {"Event": {"System": {"Channel": "C", "EventID": {"Qualifiers": "0", "Value": "1337"}}}}
        assert engine.match(event).signature == ["r", "m"]
    event = {"Event": {"System": {"Channel": "C", "EventID": {"Qualifiers": True, "Value": "1337"}}}}
    assert engine.match(event).signature == ["r"]


@pytest.mark.parametrize(
    ("node", "want"),
    [
        (Or((CidrMatch(f("Ip4"), ("192.168.0.0/16",)), CidrMatch(f("Ip4"), ("10.0.0.0/8",)))), True),
        (Or((CidrMatch(f("Ip4"), ("192.168.0.0/16",)), CidrMatch(f("Ip4"), ("fe80::/10",)))), False),
        (Or((CidrMatch(f("Ip6"), ("10.0.0.0/8",)), CidrMatch(f("Ip6"), ("fe80::/10",)))), True),
        (Or((CidrMatch(f("Ip4"), ("172.16.0.0/12",)), CidrMatch(f("Ip6"), ("fe80::/10",)))), True),
        (
            Or(
                (
                    CidrMatch(f("Ip4"), ("172.16.0.0/12",)),
                    StrMatch(f("Image"), "eq", "x"),
                    CidrMatch(f("Ip4"), ("10.1.2.3/32",)),
                )
            ),
            True,
        ),
        (Not(Or((CidrMatch(f("Ip4"), ("127.0.0.0/8",)), CidrMatch(f("Ip4"), ("10.0.0.0/8",))))), False),
        (Or((CidrMatch(f("Image"), ("0.0.0.0/0",)), CidrMatch(f("Image"), ("::/0",)))), False),
    ],
)
def test_cidr_tests_of_one_field_in_an_or_are_one_test_of_all_their_networks(node: Node, want: bool) -> None:
    assert matches(node) is want
