"""Rule validation uses the engine; the served rule set and its reducer view come from it too."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson

from vigil.manager.rules import RuleCache, compile_errors
from vigil.manager.store import SQLiteStore

COMPILED = Path("../shared/data/gene-rules/compiled.gen")


def public_rules() -> list[dict[str, object]]:
    return [orjson.loads(line) for line in COMPILED.read_bytes().splitlines() if line.strip()]


def test_the_public_gene_rule_set_validates() -> None:
    rules = public_rules()
    assert len(rules) == 134, "the 134 rules that load (README of the data)"
    assert compile_errors(rules) == []


def test_served_body_hash_and_rule_info(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "m.db", sync_full=False)
    try:
        rules = public_rules()
        store.put_rules([{"name": r["Name"], "body": orjson.dumps(r).decode()} for r in rules], update=False)
        cache = RuleCache(store)
        names = [orjson.loads(line)["Name"] for line in cache.body.splitlines()]
        assert names == sorted(r["Name"] for r in rules)  # type: ignore[type-var]
        assert cache.sha256 == hashlib.sha256(cache.body).hexdigest()
        with_attack = [r for r in rules if r.get("Meta", {}).get("ATTACK")]  # type: ignore[attr-defined]
        assert with_attack
        sample = with_attack[0]
        info = cache.info[sample["Name"]]  # type: ignore[index]
        assert info.criticality == sample["Meta"]["Criticality"]  # type: ignore[index]
        assert info.techniques == tuple(dict.fromkeys(a["ID"] for a in sample["Meta"]["ATTACK"]))  # type: ignore[index]
    finally:
        store.close()


def test_line_numbers_are_rule_positions() -> None:
    good = {"Name": "A", "Meta": {"Schema": "2.0.0"}, "Matches": ["$a: Image = 'x'"], "Condition": "$a"}
    bad = {**good, "Name": "B", "Condition": "$zz"}
    errors = compile_errors([good, good | {"Name": "C"}, bad])
    assert [(e["line"], e["rule"]) for e in errors] == [(3, "B")]
    assert "$zz" in errors[0]["message"]
