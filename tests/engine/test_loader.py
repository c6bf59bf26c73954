"""Malformed rule sets: every error names file, line, rule and statement; nothing crashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vigil.engine import Engine, RuleError, RuleLoadError, check_path

OK = {"Name": "Ok", "Meta": {"Schema": "2.0.0"}, "Matches": ["$a: Image = 'x'"], "Condition": "$a"}


def _errors(text: str) -> list[RuleError]:
    with pytest.raises(RuleLoadError) as info:
        Engine().load_text(text, "f.gen")
    return info.value.errors


def _one(rule: dict[str, object]) -> RuleError:
    errors = _errors(json.dumps(OK) + "\n" + json.dumps(rule, indent=1))
    assert len(errors) == 1, errors
    assert errors[0].file == "f.gen" and errors[0].line == 2
    return errors[0]


def with_(**kw: object) -> dict[str, object]:
    return {**OK, "Name": "Bad", **kw}


@pytest.mark.parametrize(
    ("rule", "statement", "needle"),
    [
        (with_(Matches=["$a: Image != 'x'"]), "$a: Image != 'x'", "Unknown match statement"),
        (with_(Matches=["$a: Image ~= '('"]), "$a: Image ~= '('", "invalid regular expression"),
        (with_(Matches=["$a: Image ~= 'a{1001}'"]), "$a: Image ~= 'a{1001}'", "invalid repetition size"),
        (with_(Matches=["$a: N &= 'abc'"]), "$a: N &= 'abc'", "int64"),
        (with_(Matches=["$a: N > ' 41'"]), "$a: N > ' 41'", "number"),
        (
            with_(Matches=["$c: extract('(?P<x>a)[', H) in c"]),
            "$c: extract('(?P<x>a)[', H) in c",
            "invalid regular expression",
        ),
        (with_(Condition="$a and $zz"), "$a and $zz", "Unknown operand $zz"),
        (with_(Condition="$a and not $a"), "$a and not $a", "Failed to parse condition"),
        (with_(Condition="$a   and $a"), "$a   and $a", "three consecutive spaces"),
        (with_(Condition=""), "", "empty condition"),
        (with_(Condition="$a and !"), "$a and !", "gene crashes"),
        (with_(Condition="! and $a"), "! and $a", "gene crashes"),
    ],
)
def test_statement_errors(rule: dict[str, object], statement: str, needle: str) -> None:
    err = _one(rule)
    assert err.rule == "Bad"
    assert err.statement == statement
    assert needle in err.message
    assert "f.gen:2: rule 'Bad'" in str(err)


@pytest.mark.parametrize(
    ("rule", "needle"),
    [
        (with_(Meta={"Schema": "1.9.9"}), "Expecting rule version >= 2.0.0"),
        (with_(Meta={}), "Expecting rule version >= 2.0.0"),
        (with_(Meta={"Schema": "2.0.0", "Criticality": "5"}), "Criticality of type int"),
        (with_(Meta={"Schema": "2.0.0", "Criticality": 5.5}), "Criticality of type int"),
        (with_(Meta={"Schema": "2.0.0", "Events": {"C": ["1"]}}), "Events of type int64"),
        (with_(Meta={"Schema": "2.0.0", "Events": {"C": [1.0]}}), "Events of type int64"),
        (with_(Tags="x"), "Tags of type []string"),
        (with_(Meta={"Schema": "2.0.0", "Disable": "yes"}), "Disable of type bool"),
        (with_(Matches="$a: Image = 'x'"), "Matches of type []string"),
    ],
)
def test_type_and_schema_errors(rule: dict[str, object], needle: str) -> None:
    err = _one(rule)
    assert err.rule == "Bad"
    assert needle in err.message


def test_json_syntax_error_reports_the_line_of_the_rule() -> None:
    errors = _errors(json.dumps(OK) + "\n\n" + '{"Name": "X",\n "Meta": ,}')
    assert len(errors) == 1
    assert errors[0].line == 3 and "JSON parsing" in errors[0].message


def test_array_instead_of_objects() -> None:
    errors = _errors("[" + json.dumps(OK) + "]")
    assert "cannot unmarshal array" in errors[0].message


def test_check_path_reports_every_error_of_every_file(tmp_path: Path) -> None:
    (tmp_path / "a.gen").write_text(json.dumps(with_(Condition="$zz")) + "\n" + json.dumps(OK))
    (tmp_path / "b.gen").write_text(json.dumps(OK) + "\n" + json.dumps(with_(Name="Two", Matches=["junk"])))
    (tmp_path / "c.gen").write_text("{not json")
    (tmp_path / "t.toml").write_text("bad = 1\n")
    errors = check_path(tmp_path)
    got = sorted((Path(e.file).name, e.line, e.rule) for e in errors)
    assert got == [
        ("a.gen", 1, "Bad"),
        ("b.gen", 1, "Ok"),
        ("b.gen", 2, "Two"),
        ("c.gen", 1, None),
        ("t.toml", 0, None),
    ]
    # b.gen's "Ok" duplicates a.gen's "Ok"
    assert any('Rule "Ok" already exists' in e.message for e in errors)


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    errors = check_path(tmp_path / "nope")
    assert len(errors) == 1 and "cannot open" in errors[0].message


def test_gene_rules_check_clean() -> None:
    rules = Path(__file__).resolve().parents[2] / "../shared/data/gene-rules/rules"
    assert check_path(rules) == []


def test_registered_loader_rules_load_next_to_gene_rules(tmp_path: Path) -> None:
    from vigil.engine import register_loader
    from vigil.engine.ir import Const, RegexMatch, RuleIR, SourceLocation

    def load(path: Path) -> tuple[list[RuleIR], list[RuleError]]:
        text = path.read_text()
        rules = [RuleIR(name=f"{path.stem}", condition=Const(True), source=SourceLocation(str(path), 1))]
        if "bad" in text:
            rules.append(
                RuleIR(
                    name="badre", condition=RegexMatch(("Event",), "("), source=SourceLocation(str(path), 2)
                )
            )
        return rules, []

    register_loader(".vtest", load)
    (tmp_path / "a.gen").write_text(json.dumps(OK))
    (tmp_path / "b.vtest").write_text("ok")
    (tmp_path / "c.gen").write_text(json.dumps(dict(OK, Name="Last")))
    e = Engine()
    e.load_path(tmp_path)
    assert [r.name for r in e.rules] == ["Ok", "b", "Last"]  # walk order, whatever the front end
    (tmp_path / "c.gen").unlink()
    (tmp_path / "c.vtest").write_text("bad")
    errors = check_path(tmp_path)
    assert [(Path(x.file).name, x.line, x.rule) for x in errors] == [("c.vtest", 2, "badre")]
    assert "invalid regular expression" in errors[0].message
