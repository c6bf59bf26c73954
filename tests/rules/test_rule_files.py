"""Structure of the default rule set: what every rule must carry, checked on the files themselves.

Matching is tested through the real engine in test_default_rules.py; this file checks what the
engine does not care about but a responder does (ATT&CK, criticality, description, a test case)
and the authoring rules of the set (schema, channels, parenthesised conditions, RE2 regexes).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from pathlib import Path

import pytest
import re2

from vigil.rules import WATCH_PATH_CANDIDATES, default_rule_files, default_rules_path, default_watch_paths
from vigil.rules.catalog import RuleFileError, load_catalog, read_rule_objects

CASES = Path(__file__).parent / "cases"
SYSMON = "Linux-Sysmon/Operational"
VIGIL = "Vigil/Operational"
#: EventIDs of design.md's event model.
KNOWN_EVENTS = {SYSMON: {1, 3, 5, 6, 11, 22, 23}, VIGIL: {100, 101}}
TACTICS = {
    "reconnaissance", "resource-development", "initial-access", "execution", "persistence",
    "privilege-escalation", "defense-evasion", "credential-access", "discovery", "lateral-movement",
    "collection", "command-and-control", "exfiltration", "impact",
}  # fmt: skip
#: Field match statement as gene v2.3.0 parses it (gene-language.md §2.1).
MATCH = re.compile(r"^(?P<name>\$\w+): (?P<field>\w+) (?P<op>=|~=) '(?P<value>.*)'$")

RULES = [(path, line, obj) for path in default_rule_files() for line, obj in read_rule_objects(path)]
IDS = [obj["Name"] for _, _, obj in RULES]


def test_the_set_is_large_enough_and_names_are_unique() -> None:
    assert len(RULES) >= 40
    assert len(IDS) == len(set(IDS))
    assert all(re.fullmatch(r"[A-Z][A-Za-z0-9]+", name) for name in IDS)


def test_the_rule_directory_holds_only_theme_files() -> None:
    names = sorted(p.name for p in default_rules_path().iterdir() if p.suffix in {".gen", ".gene", ".toml"})
    assert names == [p.name for p in default_rule_files()]
    assert {"execution.gen", "persistence.gen", "credential_access.gen", "vigil.gen"} <= set(names)


@pytest.mark.parametrize(("path", "line", "rule"), RULES, ids=IDS)
def test_rule_metadata(path: Path, line: int, rule: dict) -> None:
    meta = rule["Meta"]
    where = f"{path.name}:{line} {rule['Name']}"
    assert meta["Schema"] == "2.0.0", where
    assert isinstance(meta["Criticality"], int) and 1 <= meta["Criticality"] <= 10, where
    assert len(meta["Description"]) >= 30, where
    assert meta["Events"], where
    for channel, ids in meta["Events"].items():
        assert channel in KNOWN_EVENTS, where
        assert ids and set(ids) <= KNOWN_EVENTS[channel], where
    assert meta["ATTACK"], where
    for ref in meta["ATTACK"]:
        assert re.fullmatch(r"T\d{4}(?:\.\d{3})?", ref["ID"]), where
        assert ref["Tactic"] in TACTICS, where
        assert ref["Description"], where
        assert ref["Reference"] == f"https://attack.mitre.org/techniques/{ref['ID'].replace('.', '/')}/", (
            where
        )
    assert rule["Tags"][0] == "linux" and rule["Tags"][1] == path.stem.replace("_", "-"), where


@pytest.mark.parametrize(("path", "line", "rule"), RULES, ids=IDS)
def test_rule_matches_and_condition(path: Path, line: int, rule: dict) -> None:
    where = f"{path.name}:{line} {rule['Name']}"
    names = set()
    for statement in rule["Matches"]:
        m = MATCH.match(statement)
        assert m, f"{where}: not a plain field match: {statement}"
        assert m["name"] not in names, where
        names.add(m["name"])
        value = m["value"]
        # Quote trimming (gene §2.1) would silently change a value that starts or ends with a quote.
        assert value == value.strip("'\""), where
        if m["op"] == "~=":
            re2.compile("(" + value + ")")  # raises on anything RE2 rejects
    used = set(re.findall(r"\$\w+", rule["Condition"]))
    assert used == names, f"{where}: defined {sorted(names)} but the condition uses {sorted(used)}"
    # Gene groups and/or to the right (§3.3): every level must use one operator only.
    assert "  " not in rule["Condition"], where
    levels: list[set[str]] = [set()]
    for token in re.findall(r"\(|\)|\band\b|\bor\b", rule["Condition"]):
        if token == "(":
            levels.append(set())
        elif token == ")":
            levels.pop()
        else:
            levels[-1].add(token)
            assert len(levels[-1]) == 1, f"{where}: mixed and/or without parentheses"


@pytest.mark.parametrize("name", IDS)
def test_every_rule_has_a_case_file(name: str) -> None:
    case = json.loads((CASES / f"{name}.json").read_text())
    assert case["rule"] == name
    assert case["fire"] and case["benign"]


def test_no_orphan_case_files() -> None:
    assert sorted(p.stem for p in CASES.glob("*.json")) == sorted(IDS)


def test_catalog_reads_every_rule() -> None:
    catalog = load_catalog()
    assert [r.name for r in catalog] == IDS
    canary = next(r for r in catalog if r.name == "CanaryFileAccessed")
    assert canary.criticality == 10 and canary.events == {VIGIL: (100,)}
    assert canary.file == "vigil.gen" and canary.attack[0].id == "T1005"


def test_catalog_reports_the_line_of_a_broken_object(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gen"
    bad.write_text('{"Name": "A", "Meta": {}}\n\n{"Name": "B",, }\n')
    with pytest.raises(RuleFileError) as err:
        read_rule_objects(bad)
    assert err.value.line == 3 and "bad.gen:3" in str(err.value)


def test_catalog_rejects_a_json_array(tmp_path: Path) -> None:
    bad = tmp_path / "array.gen"
    bad.write_text('[{"Name": "A"}]')
    with pytest.raises(RuleFileError, match="expected a rule object, got list"):
        read_rule_objects(bad)


def test_default_watch_paths_cover_every_file_rule_case() -> None:
    """FileCreate/FileDelete rules only see what the agent watches: each case must be covered."""
    patterns = [p.rstrip("/") + "/" for p in WATCH_PATH_CANDIDATES]
    for _, _, rule in RULES:
        if not ({11, 23} & set(rule["Meta"]["Events"].get(SYSMON, []))):
            continue
        case = json.loads((CASES / f"{rule['Name']}.json").read_text())
        for event in case["fire"]:
            target = event["Event"]["EventData"].get("TargetFilename")
            if target is not None:
                assert any(fnmatch.fnmatch(target, p + "*") for p in patterns), (rule["Name"], target)


def test_default_watch_paths_exist_resolve_and_do_not_nest(tmp_path: Path) -> None:
    (tmp_path / "etc" / "cron.d").mkdir(parents=True)
    (tmp_path / "lib" / "x86_64-linux-gnu" / "security").mkdir(parents=True)
    (tmp_path / "usr").mkdir()
    (tmp_path / "usr" / "lib").symlink_to(tmp_path / "lib")
    candidates = (
        f"{tmp_path}/etc",
        f"{tmp_path}/etc/cron.d",
        f"{tmp_path}/missing",
        f"{tmp_path}/usr/lib/*/security",
        f"{tmp_path}/lib/*/security",
    )
    assert default_watch_paths(candidates) == [f"{tmp_path}/etc", f"{tmp_path}/lib/x86_64-linux-gnu/security"]
    here = default_watch_paths()
    assert "/etc" in here and "/tmp" in here
    assert all(os.path.isdir(p) and os.path.realpath(p) == p for p in here)


def test_default_rules_path_names_a_missing_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import vigil.rules as rules_pkg

    monkeypatch.setattr(rules_pkg.resources, "files", lambda _pkg: tmp_path / "gone")
    with pytest.raises(FileNotFoundError, match=f"default rule directory missing .*{tmp_path}/gone"):
        rules_pkg.default_rules_path()
