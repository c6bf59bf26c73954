"""gene's condition tokenizer, walk and symbolic lowering (spec §3)."""

from __future__ import annotations

import itertools

import pytest

from vigil.engine.gene.condition import (
    ConditionCrash,
    ConditionError,
    evaluate,
    formula_eval,
    lower,
    parse,
    tokenize,
)


@pytest.mark.parametrize(
    ("cond", "tokens"),
    [
        ("((($a", ["(", "(", "(", "$a"]),
        ("$a)))", ["$a", ")", ")", ")"]),
        ("!(!$a", ["!", "(", "!", "$a"]),
        ("))", [")", ")"]),
        ("$a and  ($b or $c)", ["$a", "and", "($b", "or", "$c", ")"]),  # double-space quirk
        ("$a\tand", ["$a\tand"]),
        ("", []),
    ],
)
def test_tokenize(cond: str, tokens: list[str]) -> None:
    assert tokenize(cond) == tokens


OPS = {"$a": True, "$b": False, "$c": True}


def _run(cond: str, values: dict[str, bool]) -> bool:
    return evaluate(parse(cond, values), values.__getitem__)


@pytest.mark.parametrize(
    ("cond", "values", "want"),
    [
        ("$b and $a or $a", {"$a": True, "$b": False}, False),  # right-grouping, not precedence
        ("$a or $b and $b", {"$a": True, "$b": False}, True),
        ("!!$c && !$a", {"$a": True, "$c": True}, True),  # !!x REST = !(!x REST)
        ("$a $b", {"$a": True, "$b": False}, False),  # adjacent operands: last wins
        ("and $a", {"$a": True}, False),
        ("or $a", {"$a": True}, True),
        ("$a and", {"$a": True}, False),
        ("$a or", {"$a": False}, False),
        ("($a and $b", {"$a": True, "$b": True}, True),  # parentheses never balanced
        ("$a and  ($b or $c)", {"$a": True, "$b": True, "$c": False}, False),  # $b vanishes
        ("! $a", {"$a": False}, True),
    ],
)
def test_walk_and_lowering_agree(cond: str, values: dict[str, bool], want: bool) -> None:
    elements = parse(cond, values)
    assert evaluate(elements, values.__getitem__) is want
    assert formula_eval(lower(elements), values) is want


@pytest.mark.parametrize(
    ("cond", "kind"),
    [
        ("$a and not $a", "syntax"),
        ("$a And $a", "syntax"),
        ("$zz", "unknown"),
        ("$a   and $a", "crash"),
        (" ", "crash"),
    ],
)
def test_parse_errors(cond: str, kind: str) -> None:
    with pytest.raises(ConditionError) as info:
        parse(cond, OPS)
    assert info.value.kind == kind


@pytest.mark.parametrize("cond", ["$a and !", "! and $a", "!)", "$a or ! or $b", ""])
def test_crashing_conditions_are_rejected(cond: str) -> None:
    with pytest.raises(ConditionError) as info:
        lower(parse(cond, OPS))
    assert info.value.kind == "crash"


def test_crash_only_for_some_values_is_rejected_but_walk_matches_gene() -> None:
    elements = parse("OR $b  AND  !", {"$b": False})
    assert evaluate(elements, {"$b": False}.__getitem__) is False
    with pytest.raises(ConditionCrash):
        evaluate(elements, {"$b": True}.__getitem__)
    with pytest.raises(ConditionError):
        lower(elements)


def test_lowering_is_exhaustively_equivalent_on_gene_rules_style_conditions() -> None:
    conds = [
        "$lcl and !($llcl or $wlp1 or $wlp2 $wlp3 or $wlp4)",
        "!$srcisparent and $windows and $ct and ($write or $read) and !$whitelist",
        "($a or $b) and ($c or $d) and !($a and $d)",
        "!(!$a or !($b and !$c)) or $d",
    ]
    for cond in conds:
        names = sorted({t.strip("()!") for t in cond.split() if t.strip("()!").startswith("$")})
        elements = parse(cond, dict.fromkeys(names, True))
        formula = lower(elements)
        for bits in itertools.product((False, True), repeat=len(names)):
            values = dict(zip(names, bits, strict=True))
            assert formula_eval(formula, values) is evaluate(elements, values.__getitem__), (cond, values)


def test_long_conditions_do_not_overflow_the_stack() -> None:
    cond = " and ".join(["$a"] * 3000)
    assert formula_eval(lower(parse(cond, {"$a": True})), {"$a": True}) is True
