"""Engine behaviour of gene v2.3.0: aggregation, GeneInfo, actions, rule loading semantics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vigil.engine import Engine, RuleLoadError
from vigil.events.gojson import dumps

SYSMON = "Microsoft-Windows-Sysmon/Operational"


def rule(name: str, **kw: Any) -> str:
    meta = {"Events": {SYSMON: [1]}, "Criticality": kw.pop("crit", 0), "Schema": "2.0.0"}
    meta.update(kw.pop("meta", {}))
    body = {"Name": name, "Meta": meta, "Matches": kw.pop("matches", []), "Condition": kw.pop("cond", "")}
    body.update(kw)
    return json.dumps(body)


def event(**data: Any) -> dict[str, Any]:
    return {"Event": {"EventData": data, "System": {"Channel": SYSMON, "EventID": "1", "Computer": "H"}}}


def test_criticality_sum_is_capped_and_negative_values_subtract() -> None:
    e = Engine()
    e.load_text("\n".join([rule("A", crit=8), rule("B", crit=-5), rule("C", crit=15)]))
    assert e.match(event()).criticality == 10
    e2 = Engine()
    e2.load_text("\n".join([rule("A", crit=8), rule("B", crit=-5)]))
    assert e2.match(event()).criticality == 3
    assert [r.criticality for r in e.rules] == [8, -5, 10]


def test_attack_deduplicated_first_wins_and_shown_only_when_asked() -> None:
    attack = [{"ID": "T1", "Tactic": "x", "Description": "first", "Reference": "r"}]
    attack2 = [{"ID": "T1", "Tactic": "y", "Reference": "r"}, {"ID": "T2", "Tactic": "z", "Reference": "r2"}]
    text = "\n".join([rule("A", meta={"ATTACK": attack}), rule("B", meta={"ATTACK": attack2})])
    e = Engine(show_attack=True)
    e.load_text(text)
    ev = event()
    e.scan(ev)
    assert dumps(ev["Event"]["GeneInfo"]) is not None
    assert (
        dumps(ev).find(
            b'"GeneInfo":{"Signature":["A","B"],"Criticality":0,"ATTACK":[{"ID":"T1","Tactic":"x","Description":"first",'
            b'"Reference":"r"},{"ID":"T2","Tactic":"z","Reference":"r2"}]}'
        )
        > 0
    )
    off = Engine(show_attack=False)
    off.load_text(text)
    assert off.match(event()).attack == []


def test_actions_set_order_and_default_actions() -> None:
    text = "\n".join(
        [rule("A", crit=3, Actions=["kill", "memdump"]), rule("B", crit=2, Actions=["kill", "block"])]
    )
    e = Engine(show_actions=True, default_actions={5: ["report", "kill"]})
    e.load_text(text)
    assert e.match(event()).actions == ["memdump", "block", "report", "kill"]
    ev = event()
    e.scan(ev)
    assert ev["Event"]["GeneInfo"]["Actions"] == ["memdump", "block", "report", "kill"]


def test_default_actions_apply_when_nothing_matched() -> None:
    e = Engine(show_actions=True, default_actions={0: ["log"]})
    e.load_text(rule("A", matches=["$a: Image = 'x'"], cond="$a"))
    ev = event(Image="y")
    res = e.scan(ev)
    assert res.signature == [] and res.actions == ["log"]
    assert dumps(ev["Event"]["GeneInfo"]) == b'{"Signature":[],"Criticality":0,"Actions":["log"]}'


def test_filter_only_event_is_left_untouched() -> None:
    e = Engine()
    e.load_text(rule("F", meta={"Filter": True}))
    ev = event()
    ev["Event"]["GeneInfo"] = {"Signature": ["stale"]}
    res = e.scan(ev)
    assert res.filtered and res.matched and not res.alert
    assert ev["Event"]["GeneInfo"] == {"Signature": ["stale"]}
    assert res.to_whids() is None


def test_filter_and_alert() -> None:
    e = Engine()
    e.load_text("\n".join([rule("F", meta={"Filter": True}), rule("A", crit=4)]))
    res = e.scan(event())
    assert res.filtered and res.signature == ["A"]
    assert res.to_whids() == {"Signature": ["A"], "Criticality": 4}


def test_no_match_attaches_empty_gene_info() -> None:
    e = Engine()
    e.load_text(rule("A", matches=["$a: Image = 'x'"], cond="$a"))
    ev = event(Image="y")
    e.scan(ev)
    assert dumps(ev["Event"]["GeneInfo"]) == b'{"Signature":[],"Criticality":0}'
    assert e.scanned == 1 and e.positives == 0


def test_empty_condition_without_matches_matches_everything_of_its_events() -> None:
    e = Engine()
    e.load_text(rule("All"))
    assert e.match(event()).signature == ["All"]
    assert e.match({"Event": {"System": {"Channel": SYSMON, "EventID": "2"}}}).signature == []


def test_computers_filter_is_exact() -> None:
    e = Engine()
    e.load_text(rule("A", meta={"Computers": ["host1"]}))
    assert e.match(
        {"Event": {"System": {"Channel": SYSMON, "EventID": 1, "Computer": "host1"}}}
    ).signature == ["A"]
    assert (
        e.match({"Event": {"System": {"Channel": SYSMON, "EventID": 1, "Computer": "HOST1"}}}).signature == []
    )


def test_keys_are_case_insensitive_and_unknown_keys_ignored() -> None:
    text = json.dumps(
        {
            "name": "A",
            "META": {
                "schema": "2.0",
                "criticality": 5,
                "events": {SYSMON: [1]},
                "Author": "x",
                "Comments": "y",
            },
            "matches": ["$a: Image ~= 'cmd'"],
            "condition": "$a",
            "Extra": [1, 2],
        }
    )
    e = Engine()
    e.load_text(text)
    res = e.match(event(Image="cmd.exe"))
    assert res.signature == ["A"] and res.criticality == 5


def test_disabled_rules_are_skipped_and_do_not_reserve_their_name() -> None:
    e = Engine()
    e.load_text("\n".join([rule("A", meta={"Disable": True}, matches=["bogus"]), rule("A")]))
    assert [r.name for r in e.rules] == ["A"]


def test_duplicate_names_are_errors() -> None:
    e = Engine()
    with pytest.raises(RuleLoadError) as info:
        e.load_text(rule("A") + "\n" + rule("A"), "dup.gen")
    err = info.value.errors[0]
    assert (err.file, err.line, err.rule) == ("dup.gen", 2, "A")
    assert 'Rule "A" already exists' in err.message
    assert e.rules == []  # nothing loaded from a failed load


def test_container_rules_disabled_without_container_and_enabled_with_it(tmp_path: Path) -> None:
    text = rule("B", matches=["$h: extract('MD5=(?P<md5>[A-F0-9]{32})', Hashes) in blacklist"], cond="$h")
    e = Engine()
    e.load_text(text)
    assert e.rules[0].disabled == 'unknown container "blacklist"'
    f = tmp_path / "bl.txt"
    f.write_bytes(b"83514D9AAF0E168944B6D3C01110C393\r\nother\n")
    e2 = Engine()
    e2.load_container_file("blacklist", f)
    assert e2.containers["blacklist"] == {"83514d9aaf0e168944b6d3c01110c393", "other"}
    e2.load_text(text)
    assert e2.match(event(Hashes="SHA1=X,MD5=83514D9AAF0E168944B6D3C01110C393")).signature == ["B"]


def test_load_path_walk_order(tmp_path: Path) -> None:
    for rel in ["m.gen", "z.gen", "b/y.gen", "a/w.gene", "a/x.gen", "a/ignored.txt"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rule(p.stem))
    e = Engine()
    e.load_path(tmp_path)
    assert [r.name for r in e.rules] == ["m", "z", "y", "w", "x"]
    assert e.match(event()).signature == ["m", "z", "y", "w", "x"]


def test_templates_are_loaded_first_and_expand_matches(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "t.toml").write_text("system = '(?i:C:\\\\Windows\\\\System32\\\\)'\n")
    (tmp_path / "r.gen").write_text(rule("T", matches=["$a: Image ~= '{{system}}cmd\\.exe'"], cond="$a"))
    e = Engine()
    e.load_path(tmp_path / "r.gen")  # a file: templates come from its directory, recursively
    assert e.match(event(Image="c:\\windows\\system32\\cmd.exe")).signature == ["T"]
    assert e.rules[0].raw is not None
    assert e.rules[0].raw["Matches"] == ["$a: Image ~= '(?i:C:\\\\Windows\\\\System32\\\\)cmd\\.exe'"]


def test_gene_condition_grouping_is_right_associative() -> None:
    e = Engine()
    e.load_text(rule("A", matches=["$a: A = '1'", "$b: B = '1'"], cond="$b and $a or $a"))
    assert e.match(event(A="1", B="0")).signature == []  # textbook precedence would say true


def test_events_matching_the_same_rules_share_one_result_equal_to_a_fresh_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vigil.engine import engine as engine_module

    attack = [{"ID": "T1", "Tactic": "x", "Reference": "r"}]
    matches = ["$a: Image = 'a'", "$b: Image = 'b'", "$c: CommandLine = 'c'"]
    text = "\n".join(
        [
            rule("A", crit=3, matches=matches[:1], cond="$a", meta={"ATTACK": attack}),
            rule("B", crit=4, matches=matches[1:2], cond="$b", actions=["kill"]),
            rule("C", crit=5, matches=matches[2:], cond="$c"),
        ]
    )
    e = Engine(show_actions=True, default_actions={8: ["memdump"]})
    e.load_text(text)
    monkeypatch.setattr(engine_module, "RESULT_MEMO_SIZE", 3)
    combos = [{"Image": i, "CommandLine": c} for i in ("a", "b", "z") for c in ("c", "y")]
    for _ in range(2):
        for data in combos:
            got = e.match(event(**data))
            fresh = Engine(show_actions=True, default_actions={8: ["memdump"]})
            fresh.load_text(text)
            fresh.compile()
            want = fresh._aggregate([i for i, r in enumerate(fresh.rules) if r.name in got.signature])
            assert (got.signature, got.criticality, got.attack, got.actions) == (
                want.signature,
                want.criticality,
                want.attack,
                want.actions,
            )
            assert got.gene_info_json() == want.gene_info_json()
            assert len(e._results) <= 3  # bounded
    first, second = e.match(event(Image="a", CommandLine="c")), e.match(event(Image="a", CommandLine="c"))
    assert first is second and first.signature == ["A", "C"] and first.actions == ["memdump"]
    e.show_attack = False  # the display flags are part of the key
    assert e.match(event(Image="a")).attack == []
    e.show_attack = True
    assert [a.id for a in e.match(event(Image="a")).attack] == ["T1"]


def test_recompiling_empties_the_shared_results() -> None:
    e = Engine(show_actions=True)
    e.load_text(rule("A", crit=2, matches=["$a: Image = 'a'"], cond="$a"))
    assert e.match(event(Image="a")).actions == []
    e.default_actions = {2: ["kill"]}  # taken into account by the next compile
    e.compile()
    assert e.match(event(Image="a")).actions == ["kill"]
