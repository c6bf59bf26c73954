"""Condition forms from the Sigma specification, each with positive and negative cases."""

from __future__ import annotations

from tests.engine.sigma.ruletext import compile_one, fires
from vigil.engine.ir import And, Not, Or, StrMatch
from vigil.engine.sigma import load_sigma_text

SELECTIONS = """
sel_a:
    Image|endswith: '\\a.exe'
sel_b:
    CommandLine|contains: ' -b '
filter_c:
    User: 'SYSTEM'
"""


def rule_with(condition: str):  # type: ignore[no-untyped-def]
    return compile_one(SELECTIONS + f"condition: {condition}")


def test_and_or_not() -> None:
    rule = rule_with("sel_a and sel_b")
    assert fires(rule, Image="x\\a.exe", CommandLine="a -b c")
    assert not fires(rule, Image="x\\a.exe", CommandLine="a c")
    rule = rule_with("sel_a or sel_b")
    assert fires(rule, Image="x\\z.exe", CommandLine="a -b c")
    assert not fires(rule, Image="x\\z.exe", CommandLine="a c")
    rule = rule_with("sel_a and not filter_c")
    assert fires(rule, Image="x\\a.exe", User="bob")
    assert fires(rule, Image="x\\a.exe")  # a missing field is "not SYSTEM"
    assert not fires(rule, Image="x\\a.exe", User="system")


def test_precedence_not_then_and_then_or() -> None:
    # a or b and c == a or (b and c)
    rule = rule_with("sel_a or sel_b and filter_c")
    assert fires(rule, Image="x\\a.exe")
    assert not fires(rule, CommandLine="x -b y")
    assert fires(rule, CommandLine="x -b y", User="SYSTEM")
    # not a and b == (not a) and b
    rule = rule_with("not sel_a and sel_b")
    assert fires(rule, Image="x\\z.exe", CommandLine="x -b y")
    assert not fires(rule, Image="x\\a.exe", CommandLine="x -b y")


def test_parentheses() -> None:
    rule = rule_with("(sel_a or sel_b) and filter_c")
    assert fires(rule, Image="x\\a.exe", User="SYSTEM")
    assert not fires(rule, Image="x\\a.exe", User="bob")
    rule = rule_with("not (sel_a or sel_b)")
    assert fires(rule, Image="x\\z.exe")
    assert not fires(rule, CommandLine="x -b y")


def test_one_of_and_all_of_patterns() -> None:
    rule = rule_with("1 of sel_*")
    assert fires(rule, CommandLine="x -b y")
    assert not fires(rule, User="SYSTEM")
    rule = rule_with("all of sel_*")
    assert fires(rule, Image="x\\a.exe", CommandLine="x -b y")
    assert not fires(rule, Image="x\\a.exe")
    rule = rule_with("any of sel_*")
    assert fires(rule, Image="x\\a.exe")


def test_them() -> None:
    rule = rule_with("1 of them")
    assert fires(rule, User="SYSTEM")
    assert not fires(rule, User="bob")
    rule = rule_with("all of them")
    assert fires(rule, Image="x\\a.exe", CommandLine="x -b y", User="SYSTEM")
    assert not fires(rule, Image="x\\a.exe", CommandLine="x -b y")


def test_one_of_them_with_filters() -> None:
    rule = compile_one(
        """
selection_img:
    Image|endswith: '\\rundll32.exe'
selection_cli:
    CommandLine|contains: 'javascript:'
filter_main_system:
    User|contains: 'AUTHORI'
filter_optional_defender:
    ParentImage|startswith: 'C:\\ProgramData\\Microsoft\\Windows Defender\\'
condition: 1 of selection_* and not 1 of filter_main_* and not 1 of filter_optional_*
"""
    )
    assert fires(rule, Image="C:\\rundll32.exe", User="bob", ParentImage="C:\\x.exe")
    assert fires(rule, CommandLine="x javascript:y")
    assert not fires(rule, Image="C:\\rundll32.exe", User="NT AUTHORITY\\SYSTEM")
    assert not fires(
        rule, Image="C:\\rundll32.exe", ParentImage="C:\\ProgramData\\Microsoft\\Windows Defender\\a.exe"
    )
    assert not fires(rule, Image="C:\\notepad.exe", User="bob")


def test_selection_as_list_of_maps_is_or_and_map_is_and() -> None:
    rule = compile_one(
        """
sel:
    - Image|endswith: '\\a.exe'
      User: bob
    - CommandLine: 'exact'
condition: sel
"""
    )
    assert fires(rule, Image="\\a.exe", User="bob")
    assert not fires(rule, Image="\\a.exe", User="eve")
    assert fires(rule, CommandLine="EXACT")


def test_condition_list_is_or() -> None:
    text = (
        "title: Two conditions\nid: 5f0c3cb8-7c3c-4a53-9c1f-000000000020\nlogsource:\n    product: windows\n"
        "    category: process_creation\ndetection:\n    a:\n        User: alice\n    b:\n        User: bob\n"
        "    condition:\n        - a\n        - b\n"
    )
    (rule,) = load_sigma_text(text, "t.yml").rules
    assert fires(rule.ir, User="alice") and fires(rule.ir, User="bob")
    assert not fires(rule.ir, User="eve")


def test_tree_shape_is_flat_and_double_not_cancels() -> None:
    rule = rule_with("sel_a and sel_b and not filter_c")
    assert isinstance(rule.condition, And) and len(rule.condition.children) == 3
    assert isinstance(rule.condition.children[2], Not)
    rule = rule_with("not not sel_a")
    assert isinstance(rule.condition, StrMatch)
    rule = rule_with("sel_a or sel_b or filter_c")
    assert isinstance(rule.condition, Or) and len(rule.condition.children) == 3


def test_undefined_identifier_is_a_parse_rejection_naming_the_rule() -> None:
    text = (
        "title: Broken\nid: 5f0c3cb8-7c3c-4a53-9c1f-000000000021\nlogsource:\n    product: windows\n"
        "    category: process_creation\ndetection:\n    sel:\n        User: x\n"
        "    condition: sel and missing\n"
    )
    result = load_sigma_text(text, "broken.yml")
    assert not result.rules
    (rej,) = result.rejections
    assert (rej.path, rej.title, rej.kind) == ("broken.yml", "Broken", "parse")
    assert "missing" in rej.reason
    assert str(rej).startswith("broken.yml:1: rule 'Broken'")


def test_pattern_matching_nothing_is_rejected() -> None:
    text = (
        "title: Empty selector\nid: 5f0c3cb8-7c3c-4a53-9c1f-000000000022\nlogsource:\n    product: windows\n"
        "    category: process_creation\ndetection:\n    sel:\n        User: x\n"
        "    condition: 1 of nothing_*\n"
    )
    (rej,) = load_sigma_text(text, "t.yml").rejections
    assert "nothing_*" in rej.reason
