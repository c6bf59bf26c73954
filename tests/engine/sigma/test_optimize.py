"""IR rewrites that must not change what a rule matches."""

from __future__ import annotations

from tests.engine.sigma.matching import matches
from tests.engine.sigma.ruletext import compile_one
from vigil.engine.ir import KeywordMatch, Or, StrMatch
from vigil.engine.sigma.optimize import hoist_event_ids, merge_keywords, required_event_ids

EID = ("Event", "System", "EventID")
SECURITY = "product: windows\n    service: security"


def security(eid: object, **data: str) -> dict[str, object]:
    return {"Event": {"System": {"Channel": "Security", "EventID": eid}, "EventData": data}}


def test_required_event_ids() -> None:
    a, b = StrMatch(EID, "eq", "4624"), StrMatch(EID, "eq", "4625")
    other = StrMatch(("Event", "EventData", "User"), "eq", "x")
    assert required_event_ids(Or((a, b))) == {4624, 4625}
    assert required_event_ids(Or((a, other))) is None
    assert required_event_ids(other) is None


def test_service_rule_gets_its_event_ids_and_zero() -> None:
    rule = compile_one(
        "sel:\n    EventID:\n        - 4624\n        - 4625\n    LogonType: 3\ncondition: sel", SECURITY
    )
    assert rule.events == (("Security", (0, 4624, 4625)),)
    assert matches(rule, security("4625", LogonType="3"))
    assert not matches(rule, security("4634", LogonType="3"))
    # An EventID rendered with Qualifiers is indexed as 0 and still matches through EventID.Value.
    assert matches(rule, security({"Qualifiers": "0", "Value": "4624"}, LogonType="3"))


def test_no_hoisting_when_a_branch_is_unconstrained() -> None:
    rule = compile_one("a:\n    EventID: 4624\nb:\n    LogonType: 3\ncondition: a or b", SECURITY)
    assert rule.events == (("Security", ()),)
    assert hoist_event_ids(StrMatch(EID, "eq", "1"), (("X", (5,)),)) == (("X", (5,)),)


def test_keywords_merge_into_one_search_with_the_same_meaning() -> None:
    kws = Or(
        (
            KeywordMatch("contains", "a.b"),
            KeywordMatch("contains", "CaSe", ignore_case=False),
            KeywordMatch("regex", "(?is)x.*y"),
        )
    )
    merged = merge_keywords(kws)
    assert isinstance(merged, KeywordMatch) and merged.op == "regex"
    for text, expected in [
        ("A.B", True),
        ("axb", False),
        ("CaSe", True),
        ("case", False),
        ("X\nY", True),
        ("", False),
    ]:
        event = {"Event": {"EventData": {"Data": text}}}
        assert matches_node(merged, event) is expected is matches_node(kws, event), text


def matches_node(node: object, event: dict[str, object]) -> bool:
    from tests.engine.sigma.reference import evaluate

    return evaluate(node, event)  # type: ignore[arg-type]


def test_contains_lists_become_one_regex_and_other_tests_stay() -> None:
    rule = compile_one(
        "sel:\n    - ParentImage|endswith:\n        - '\\a.exe'\n        - '\\b.exe'\n"
        "    - ParentImage|contains:\n        - '\\Temp\\'\n        - '\\Public\\'\ncondition: sel"
    )
    assert isinstance(rule.condition, Or)
    kinds = sorted(type(c).__name__ + getattr(c, "op", "") for c in rule.condition.children)
    assert kinds == ["RegexMatch", "StrMatchendswith", "StrMatchendswith"]
    for image, expected in [
        ("C:\\x\\A.exe", True),
        ("C:\\x\\b.EXE", True),
        ("C:\\Windows\\TEMP\\z.exe", True),
        ("C:\\Users\\public\\z.exe", True),
        ("C:\\x\\c.exe", False),
        ("C:\\Temp", False),
    ]:
        assert matches(rule, sysmon(ParentImage=image)) is expected, image


def sysmon(**data: str) -> dict[str, object]:
    return {
        "Event": {
            "System": {"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": "1"},
            "EventData": data,
        }
    }
