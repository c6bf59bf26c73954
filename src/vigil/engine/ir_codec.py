"""IR rules as JSON-safe data and back, for the on-disk rule cache (``vigil.engine.rule_cache``).

Nodes are short tagged lists; a regex carries its RE2 program size, noted for the engine on
decoding (cache keys cover the RE2 version), so a cached load compiles no regex before matching.
Decoding checks every field's type and every node's shape and raises :class:`CacheFormatError` on
anything else, so a damaged entry is a miss, never a wrong rule. The front ends' caches
(``vigil.engine.sigma.cache``, ``vigil.engine.gene_cache``) add what is their own around it.
"""

from __future__ import annotations

import math
from typing import Any, NoReturn

from vigil.engine import runtime
from vigil.engine.ir import (
    And,
    Attack,
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
    SourceLocation,
    StrMatch,
)

__all__ = [
    "CacheFormatError",
    "as_bool",
    "as_choice",
    "as_int",
    "as_list",
    "as_opt_str",
    "as_path",
    "as_str",
    "as_strs",
    "bad",
    "decode_node",
    "decode_rule",
    "encode_node",
    "encode_rule",
]

_STR_OPS = frozenset({"eq", "contains", "startswith", "endswith"})
_NUM_OPS = frozenset({"<", "<=", ">", ">="})
_KEYWORD_OPS = _STR_OPS | {"regex"}
_SYNTAX = frozenset({"go", "plain"})


class CacheFormatError(ValueError):
    """A cache entry that is not what the encoders here (and the front ends' around them) write."""


# ---------------------------------------------------------------------------------------- encode


def encode_node(n: Node) -> list[Any]:
    match n:
        case StrMatch():
            return ["S", list(n.field), n.op, n.value, n.ignore_case]
        case RegexMatch():  # with its RE2 program size, which the engine needs and measures once
            return ["R", list(n.field), n.pattern, runtime.program_size(n.pattern)]
        case And():
            return ["&", [encode_node(c) for c in n.children]]
        case Or():
            return ["|", [encode_node(c) for c in n.children]]
        case Not():
            return ["!", encode_node(n.child)]
        case KeywordMatch():
            return ["K", n.op, n.value, n.ignore_case, list(n.scope)]
        case Exists():
            return ["E", list(n.field), n.present]
        case NumCmp():
            return ["N", list(n.field), n.op, n.value, n.syntax]
        case FieldRefMatch():
            return ["FR", list(n.field), list(n.other), n.op, n.ignore_case]
        case CidrMatch():
            return ["CI", list(n.field), list(n.networks)]
        case FlagMatch():
            return ["FL", list(n.field), n.mask]
        case ContainerMatch():
            return ["CO", list(n.field), n.pattern, n.group, n.container]
        case Const():
            return ["B", n.value]
    raise TypeError(f"unknown IR node {n!r}")


def encode_rule(ir: RuleIR) -> dict[str, Any]:
    """``ir`` as a JSON-safe dict (its source as ``[file, line]``)."""
    return {
        "name": ir.name,
        "condition": encode_node(ir.condition),
        "events": [[channel, list(ids)] for channel, ids in ir.events],
        "computers": list(ir.computers),
        "criticality": ir.criticality,
        "filter": ir.filter,
        "actions": list(ir.actions),
        "attack": [[a.id, a.tactic, a.description, a.reference] for a in ir.attack],
        "tags": list(ir.tags),
        "description": ir.description,
        "source": None if ir.source is None else [ir.source.file, ir.source.line],
        "sigma_id": ir.sigma_id,
    }


# ---------------------------------------------------------------------------------------- decode


def bad(what: str, value: Any) -> NoReturn:
    raise CacheFormatError(f"{what}: unexpected {type(value).__name__} {str(value)[:80]!r}")


def as_str(v: Any, what: str) -> str:
    if v.__class__ is not str:
        bad(what, v)
    return v


def as_opt_str(v: Any, what: str) -> str | None:
    return None if v is None else as_str(v, what)


def as_bool(v: Any, what: str) -> bool:
    if v.__class__ is not bool:
        bad(what, v)
    return v


def as_int(v: Any, what: str) -> int:
    if v.__class__ is not int:
        bad(what, v)
    return v


def as_list(v: Any, what: str) -> list[Any]:
    if v.__class__ is not list:
        bad(what, v)
    return v


_CHECKED: dict[tuple[Any, ...], tuple[str, ...]] = {}  # string tuples already checked (field paths)


def as_strs(v: Any, what: str) -> tuple[str, ...]:
    items = tuple(as_list(v, what))
    try:
        checked = _CHECKED.get(items)  # only tuples of str are stored, so a hit is a tuple of str
    except TypeError:  # a list or dict among the items
        bad(what, v)
    if checked is not None:
        return checked
    for item in items:
        if item.__class__ is not str:
            bad(what, item)
    if len(_CHECKED) < 4096:
        _CHECKED[items] = items
    return items


def as_path(v: Any) -> tuple[str, ...]:
    path = as_strs(v, "field path")
    if not path:
        bad("field path", v)
    return path


def as_choice(v: Any, allowed: frozenset[str], what: str) -> Any:
    if v.__class__ is not str or v not in allowed:
        bad(what, v)
    return v


def decode_node(v: Any) -> Node:
    n = as_list(v, "node")
    if not n:
        bad("node", v)
    tag, args = n[0], n[1:]
    try:
        match tag:
            case "S":
                field, op, value, ignore_case = args
                return StrMatch(
                    as_path(field),
                    as_choice(op, _STR_OPS, "op"),
                    as_str(value, "value"),
                    as_bool(ignore_case, "case"),
                )
            case "R":
                field, pattern, size = args
                node = RegexMatch(as_path(field), as_str(pattern, "pattern"))
                runtime.note_program_size(pattern, as_int(size, "program size"))
                return node
            case "&":
                (children,) = args
                return And(tuple(decode_node(c) for c in as_list(children, "children")))
            case "|":
                (children,) = args
                return Or(tuple(decode_node(c) for c in as_list(children, "children")))
            case "!":
                (child,) = args
                return Not(decode_node(child))
            case "K":
                op, value, ignore_case, scope = args
                return KeywordMatch(
                    as_choice(op, _KEYWORD_OPS, "keyword op"),
                    as_str(value, "keyword"),
                    as_bool(ignore_case, "case"),
                    as_strs(scope, "scope"),
                )
            case "E":
                field, present = args
                return Exists(as_path(field), as_bool(present, "present"))
            case "N":
                field, op, value, syntax = args
                if value.__class__ is int:
                    value = float(value)
                if value.__class__ is not float or math.isnan(value):
                    bad("number", value)
                return NumCmp(
                    as_path(field), as_choice(op, _NUM_OPS, "op"), value, as_choice(syntax, _SYNTAX, "syntax")
                )
            case "FR":
                field, other, op, ignore_case = args
                return FieldRefMatch(
                    as_path(field),
                    as_path(other),
                    as_choice(op, _STR_OPS, "op"),
                    as_bool(ignore_case, "case"),
                )
            case "CI":
                field, networks = args
                return CidrMatch(as_path(field), as_strs(networks, "networks"))
            case "FL":
                field, mask = args
                return FlagMatch(as_path(field), as_int(mask, "mask"))
            case "CO":
                field, pattern, group, container = args
                return ContainerMatch(
                    as_path(field),
                    as_str(pattern, "pattern"),
                    as_str(group, "group"),
                    as_str(container, "container"),
                )
            case "B":
                (value,) = args
                return Const(as_bool(value, "const"))
    except ValueError as err:  # wrong number of items to unpack
        if isinstance(err, CacheFormatError):
            raise
        bad(f"node {tag!r}", v)
    bad("node tag", tag)


def decode_rule(v: Any, old: str = "", new: str = "") -> RuleIR:
    """The :class:`RuleIR` ``encode_rule`` wrote; a source file ``old`` is renamed ``new`` (a
    Sigma rule directory that moved)."""
    if v.__class__ is not dict:
        bad("rule", v)
    try:
        events = []
        for item in as_list(v["events"], "events"):
            channel, ids = as_list(item, "event filter")
            events.append(
                (as_str(channel, "channel"), tuple(as_int(i, "EventID") for i in as_list(ids, "EventIDs")))
            )
        attack = []
        for item in as_list(v["attack"], "attack"):
            aid, tactic, description, reference = as_list(item, "attack")
            attack.append(
                Attack(
                    as_str(aid, "attack id"),
                    as_str(tactic, "tactic"),
                    as_str(description, "attack description"),
                    as_str(reference, "reference"),
                )
            )
        source = v["source"]
        if source is not None:
            file, line = as_list(source, "source")
            file = new if file == old else as_str(file, "source file")
            source = SourceLocation(file, as_int(line, "source line"))
        ir = RuleIR(
            name=as_str(v["name"], "name"),
            condition=decode_node(v["condition"]),
            events=tuple(events),
            computers=as_strs(v["computers"], "computers"),
            criticality=as_int(v["criticality"], "criticality"),
            filter=as_bool(v["filter"], "filter"),
            actions=as_strs(v["actions"], "actions"),
            attack=tuple(attack),
            tags=as_strs(v["tags"], "tags"),
            description=as_str(v["description"], "description"),
            source=source,
            sigma_id=as_opt_str(v["sigma_id"], "sigma id"),
        )
    except KeyError as err:
        raise CacheFormatError(f"rule without {err}") from None
    except ValueError as err:
        if isinstance(err, CacheFormatError):
            raise
        raise CacheFormatError(f"malformed rule: {err}") from None
    return ir
