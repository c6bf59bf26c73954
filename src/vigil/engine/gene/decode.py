"""Go ``encoding/json`` decoding of gene rule files into gene's v2.3.0 rule struct (spec §1.2-1.4).

A rule file is a stream of JSON objects. Keys match struct fields case-insensitively (an exact match
wins), unknown keys are ignored, ``null`` leaves the default, and a value of the wrong JSON type is an
error. The decoded rule is a plain dict in gene's struct field order, so ``-dump`` can re-marshal it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["DecodeError", "RawRule", "decode_rule", "iter_objects", "rule_name"]

_WS = re.compile(r"[ \t\n\r]*")
_INT64 = (-(1 << 63), (1 << 63) - 1)


class DecodeError(ValueError):
    """A value of a rule object has the wrong JSON type (Go UnmarshalTypeError)."""


@dataclass(frozen=True, slots=True)
class RawRule:
    """One decoded rule object and where it starts in its file."""

    data: Any  # the object's (key, value) pairs, or None on error
    line: int
    error: str | None = None


def _pairs(pairs: list[tuple[str, Any]]) -> _Obj:
    return _Obj(pairs)


class _Obj(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs in file order (Go matches keys one by one)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_reject_constant)


def iter_objects(text: str) -> Iterator[RawRule]:
    """Yield each top-level value of a JSON stream; stops after a syntax error (reported as RawRule.error)."""
    pos = _WS.match(text, 0).end()  # type: ignore[union-attr]
    line = 1
    counted = 0  # text[:counted] has line - 1 newlines
    while pos < len(text):
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            obj, end = _DECODER.raw_decode(text, pos)
        except (json.JSONDecodeError, ValueError) as err:
            yield RawRule(None, line, f"JSON parsing (rule line={line}): {err}")
            return
        if not isinstance(obj, _Obj):
            kind = {list: "array", str: "string", bool: "bool", type(None): "null"}.get(type(obj), "number")
            if obj is not None:
                yield RawRule(None, line, f"cannot unmarshal {kind} into Go value of type engine.Rule")
        else:
            yield RawRule(obj, line)
        pos = _WS.match(text, end).end()  # type: ignore[union-attr]


def _jtype(v: Any) -> str:
    if isinstance(v, _Obj):
        return "object"
    if isinstance(v, list):
        return "array"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, str):
        return "string"
    return "number"


def _fields(obj: _Obj, names: tuple[str, ...]) -> dict[str, Any]:
    """Assign pairs to struct fields like Go: exact name first, else case-insensitive; unknown ignored."""
    lower = {n.lower(): n for n in names}
    out: dict[str, Any] = {}
    for key, value in obj:
        name = key if key in names else lower.get(key.lower())
        if name is not None:
            out[name] = value
    return out


def _string(v: Any, where: str) -> str:
    if isinstance(v, str):
        return v
    raise DecodeError(f"cannot unmarshal {_jtype(v)} into Go struct field {where} of type string")


def _strings(v: Any, where: str) -> list[str] | None:
    if v is None:
        return None
    if not isinstance(v, list) or isinstance(v, _Obj):
        raise DecodeError(f"cannot unmarshal {_jtype(v)} into Go struct field {where} of type []string")
    return ["" if x is None else _string(x, where) for x in v]


def _int(v: Any, where: str, go_type: str = "int") -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        shown = v if isinstance(v, float) else _jtype(v)
        raise DecodeError(
            f"cannot unmarshal {_jtype(v)} {shown} into Go struct field {where} of type {go_type}"
        )
    if not _INT64[0] <= v <= _INT64[1]:
        raise DecodeError(f"cannot unmarshal number {v} into Go struct field {where} of type {go_type}")
    return v


def _bool(v: Any, where: str) -> bool:
    if isinstance(v, bool):
        return v
    raise DecodeError(f"cannot unmarshal {_jtype(v)} into Go struct field {where} of type bool")


def _events(v: Any) -> dict[str, list[int]] | None:
    where = "Rule.Meta.Events"
    if v is None:
        return None
    if not isinstance(v, _Obj):
        raise DecodeError(
            f"cannot unmarshal {_jtype(v)} into Go struct field {where} of type map[string][]int64"
        )
    out: dict[str, list[int]] = {}
    for channel, ids in v:
        if ids is None:
            out[channel] = []
            continue
        if not isinstance(ids, list) or isinstance(ids, _Obj):
            raise DecodeError(f"cannot unmarshal {_jtype(ids)} into Go struct field {where} of type []int64")
        out[channel] = [0 if i is None else _int(i, where, "int64") for i in ids]
    return out


_ATTACK_FIELDS = ("ID", "Tactic", "Description", "Reference")


def _attack(v: Any) -> list[dict[str, str]]:
    where = "Rule.Meta.ATTACK"
    if v is None:
        return []
    if not isinstance(v, list) or isinstance(v, _Obj):
        raise DecodeError(
            f"cannot unmarshal {_jtype(v)} into Go struct field {where} of type []engine.Attack"
        )
    out = []
    for item in v:
        entry = dict.fromkeys(_ATTACK_FIELDS, "")
        if item is None:
            out.append(entry)
            continue
        if not isinstance(item, _Obj):
            raise DecodeError(
                f"cannot unmarshal {_jtype(item)} into Go struct field {where} of type engine.Attack"
            )
        for name, value in _fields(item, _ATTACK_FIELDS).items():
            if value is not None:
                entry[name] = _string(value, f"{where}.{name}")
        out.append(entry)
    return out


_META_FIELDS = ("Events", "Computers", "ATTACK", "Criticality", "Disable", "Filter", "Schema")
_RULE_FIELDS = ("Name", "Tags", "Meta", "Matches", "Condition", "Actions")


def rule_name(obj: Any) -> str | None:
    """The rule name of an undecodable object, for error messages."""
    return next((v for k, v in obj if k.lower() == "name" and isinstance(v, str)), None)


def decode_rule(obj: Any) -> dict[str, Any]:
    """The rule in gene's struct shape (dump order); DecodeError on a type mismatch."""
    f = _fields(obj, _RULE_FIELDS)
    rule: dict[str, Any] = {
        "Name": "",
        "Tags": None,
        "Meta": None,
        "Matches": None,
        "Condition": "",
        "Actions": None,
    }
    if f.get("Name") is not None:
        rule["Name"] = _string(f["Name"], "Rule.Name")
    rule["Tags"] = _strings(f.get("Tags"), "Rule.Tags")
    rule["Matches"] = _strings(f.get("Matches"), "Rule.Matches")
    rule["Actions"] = _strings(f.get("Actions"), "Rule.Actions")
    if f.get("Condition") is not None:
        rule["Condition"] = _string(f["Condition"], "Rule.Condition")
    meta: dict[str, Any] = {
        "Events": None,
        "Computers": None,
        "ATTACK": [],
        "Criticality": 0,
        "Disable": False,
        "Filter": False,
        "Schema": "",
    }
    m = f.get("Meta")
    if m is not None:
        if not isinstance(m, _Obj):
            raise DecodeError(
                f"cannot unmarshal {_jtype(m)} into Go struct field Rule.Meta of type engine.MetaSection"
            )
        mf = _fields(m, _META_FIELDS)
        meta["Events"] = _events(mf.get("Events"))
        meta["Computers"] = _strings(mf.get("Computers"), "Rule.Meta.Computers")
        meta["ATTACK"] = _attack(mf.get("ATTACK"))
        if mf.get("Criticality") is not None:
            meta["Criticality"] = _int(mf["Criticality"], "Rule.Meta.Criticality")
        for key in ("Disable", "Filter"):
            if mf.get(key) is not None:
                meta[key] = _bool(mf[key], f"Rule.Meta.{key}")
        if mf.get("Schema") is not None:
            meta["Schema"] = _string(mf["Schema"], "Rule.Meta.Schema")
    rule["Meta"] = meta
    return rule
