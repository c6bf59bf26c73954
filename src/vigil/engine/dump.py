"""gene ``-dump``: loaded gene rules (after template expansion) as compact JSON lines, sorted by name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import re2

from vigil.engine.engine import RuleInfo
from vigil.events.gojson import dumps

__all__ = ["dump_rule", "dump_rules"]


def dump_rule(raw: dict[str, Any]) -> bytes:
    """One rule re-marshalled like gene's struct: fixed field order, null for absent arrays."""
    meta = raw["Meta"]
    events = meta["Events"]
    out_meta: dict[str, Any] = {
        "Events": None if events is None else {ch: events[ch] for ch in sorted(events)},
        "Computers": meta["Computers"],
    }
    if meta["ATTACK"]:
        attack = []
        for a in meta["ATTACK"]:
            item = {"ID": a["ID"], "Tactic": a["Tactic"]}
            if a["Description"]:
                item["Description"] = a["Description"]
            item["Reference"] = a["Reference"]
            attack.append(item)
        out_meta["ATTACK"] = attack
    out_meta.update(Criticality=meta["Criticality"], Disable=meta["Disable"], Filter=meta["Filter"])
    out_meta["Schema"] = meta["Schema"]
    rule = {
        "Name": raw["Name"],
        "Tags": raw["Tags"],
        "Meta": out_meta,
        "Matches": raw["Matches"],
        "Condition": raw["Condition"],
        "Actions": raw["Actions"],
    }
    return dumps(rule, sort_keys=False)


def dump_rules(rules: Iterable[RuleInfo], patterns: Iterable[str] = (".*",)) -> list[bytes]:
    """Rules whose name matches one of the RE2 ``patterns`` (unanchored), sorted by name."""
    regexes = [re2.compile(p) for p in patterns]
    chosen = [r for r in rules if r.raw is not None and any(rx.search(r.name) for rx in regexes)]
    return [dump_rule(r.raw) for r in sorted(chosen, key=lambda r: r.name.encode()) if r.raw is not None]
