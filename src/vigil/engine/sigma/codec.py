"""What one Sigma file compiled to, as JSON-safe data and back, for the on-disk rule cache.

The rule cache (``vigil.engine.rule_cache``) keeps vigil's own output, never pySigma objects and
never pickle: rules as their IR (nodes as short tagged lists), the producer of their events, and
the rejections in order. A regex carries its RE2 program size, noted for the engine on decoding
(the key covers the RE2 version), so a cached load compiles no regex before matching. Decoding checks every field's type and every node's shape and raises
:class:`CacheFormatError` on anything else, so a damaged entry is a miss, never a wrong rule.
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
from vigil.engine.sigma.errors import Rejection
from vigil.engine.sigma.results import CompiledRule, FileResult

__all__ = ["FORMAT", "CacheFormatError", "decode_file_result", "encode_file_result"]

#: Bump when the encoding changes (the cache key also covers vigil's code, see loader.py).
FORMAT = 1
_STR_OPS = frozenset({"eq", "contains", "startswith", "endswith"})
_NUM_OPS = frozenset({"<", "<=", ">", ">="})
_KEYWORD_OPS = _STR_OPS | {"regex"}
_SYNTAX = frozenset({"go", "plain"})
_PRODUCERS = frozenset({"live", "scan"})


class CacheFormatError(ValueError):
    """A cache entry that is not what ``encode_file_result`` writes."""


# ---------------------------------------------------------------------------------------- encode


def _node(n: Node) -> list[Any]:
    match n:
        case StrMatch():
            return ["S", list(n.field), n.op, n.value, n.ignore_case]
        case RegexMatch():  # with its RE2 program size, which the engine needs and measures once
            return ["R", list(n.field), n.pattern, runtime.program_size(n.pattern)]
        case And():
            return ["&", [_node(c) for c in n.children]]
        case Or():
            return ["|", [_node(c) for c in n.children]]
        case Not():
            return ["!", _node(n.child)]
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


def _rule(rule: CompiledRule) -> dict[str, Any]:
    ir = rule.ir
    return {
        "name": ir.name,
        "condition": _node(ir.condition),
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
        "producer": rule.producer,
    }


def _rejection(r: Rejection) -> list[Any]:
    return [r.path, r.line, r.rule_id, r.title, r.kind, r.reason, r.correlation]


def encode_file_result(result: FileResult, path: str) -> dict[str, Any]:
    """``result`` (of the file at ``path``) as JSON-safe data."""
    return {
        "format": FORMAT,
        "path": path,
        "rules": [_rule(r) for r in result.rules],
        "file_rejections": [_rejection(r) for r in result.file_rejections],
        "rule_rejections": [_rejection(r) for r in result.rule_rejections],
    }


# ---------------------------------------------------------------------------------------- decode


def _bad(what: str, value: Any) -> NoReturn:
    raise CacheFormatError(f"{what}: unexpected {type(value).__name__} {str(value)[:80]!r}")


def _str(v: Any, what: str) -> str:
    if v.__class__ is not str:
        _bad(what, v)
    return v


def _opt_str(v: Any, what: str) -> str | None:
    return None if v is None else _str(v, what)


def _bool(v: Any, what: str) -> bool:
    if v.__class__ is not bool:
        _bad(what, v)
    return v


def _int(v: Any, what: str) -> int:
    if v.__class__ is not int:
        _bad(what, v)
    return v


def _list(v: Any, what: str) -> list[Any]:
    if v.__class__ is not list:
        _bad(what, v)
    return v


_CHECKED: dict[tuple[Any, ...], tuple[str, ...]] = {}  # string tuples already checked (field paths)


def _strs(v: Any, what: str) -> tuple[str, ...]:
    items = tuple(_list(v, what))
    try:
        checked = _CHECKED.get(items)  # only tuples of str are stored, so a hit is a tuple of str
    except TypeError:  # a list or dict among the items
        _bad(what, v)
    if checked is not None:
        return checked
    for item in items:
        if item.__class__ is not str:
            _bad(what, item)
    if len(_CHECKED) < 4096:
        _CHECKED[items] = items
    return items


def _path(v: Any) -> tuple[str, ...]:
    path = _strs(v, "field path")
    if not path:
        _bad("field path", v)
    return path


def _choice(v: Any, allowed: frozenset[str], what: str) -> Any:
    if v.__class__ is not str or v not in allowed:
        _bad(what, v)
    return v


def _decode_node(v: Any) -> Node:
    n = _list(v, "node")
    if not n:
        _bad("node", v)
    tag, args = n[0], n[1:]
    try:
        match tag:
            case "S":
                field, op, value, ignore_case = args
                return StrMatch(
                    _path(field),
                    _choice(op, _STR_OPS, "op"),
                    _str(value, "value"),
                    _bool(ignore_case, "case"),
                )
            case "R":
                field, pattern, size = args
                node = RegexMatch(_path(field), _str(pattern, "pattern"))
                runtime.note_program_size(pattern, _int(size, "program size"))
                return node
            case "&":
                (children,) = args
                return And(tuple(_decode_node(c) for c in _list(children, "children")))
            case "|":
                (children,) = args
                return Or(tuple(_decode_node(c) for c in _list(children, "children")))
            case "!":
                (child,) = args
                return Not(_decode_node(child))
            case "K":
                op, value, ignore_case, scope = args
                return KeywordMatch(
                    _choice(op, _KEYWORD_OPS, "keyword op"),
                    _str(value, "keyword"),
                    _bool(ignore_case, "case"),
                    _strs(scope, "scope"),
                )
            case "E":
                field, present = args
                return Exists(_path(field), _bool(present, "present"))
            case "N":
                field, op, value, syntax = args
                if value.__class__ is int:
                    value = float(value)
                if value.__class__ is not float or math.isnan(value):
                    _bad("number", value)
                return NumCmp(
                    _path(field), _choice(op, _NUM_OPS, "op"), value, _choice(syntax, _SYNTAX, "syntax")
                )
            case "FR":
                field, other, op, ignore_case = args
                return FieldRefMatch(
                    _path(field), _path(other), _choice(op, _STR_OPS, "op"), _bool(ignore_case, "case")
                )
            case "CI":
                field, networks = args
                return CidrMatch(_path(field), _strs(networks, "networks"))
            case "FL":
                field, mask = args
                return FlagMatch(_path(field), _int(mask, "mask"))
            case "CO":
                field, pattern, group, container = args
                return ContainerMatch(
                    _path(field), _str(pattern, "pattern"), _str(group, "group"), _str(container, "container")
                )
            case "B":
                (value,) = args
                return Const(_bool(value, "const"))
    except ValueError as err:  # wrong number of items to unpack
        if isinstance(err, CacheFormatError):
            raise
        _bad(f"node {tag!r}", v)
    _bad("node tag", tag)


def _decode_rule(v: Any, old: str, new: str) -> CompiledRule:
    if v.__class__ is not dict:
        _bad("rule", v)
    try:
        events = []
        for item in _list(v["events"], "events"):
            channel, ids = _list(item, "event filter")
            events.append(
                (_str(channel, "channel"), tuple(_int(i, "EventID") for i in _list(ids, "EventIDs")))
            )
        attack = []
        for item in _list(v["attack"], "attack"):
            aid, tactic, description, reference = _list(item, "attack")
            attack.append(
                Attack(
                    _str(aid, "attack id"),
                    _str(tactic, "tactic"),
                    _str(description, "attack description"),
                    _str(reference, "reference"),
                )
            )
        source = v["source"]
        if source is not None:
            file, line = _list(source, "source")
            file = new if file == old else _str(file, "source file")
            source = SourceLocation(file, _int(line, "source line"))
        ir = RuleIR(
            name=_str(v["name"], "name"),
            condition=_decode_node(v["condition"]),
            events=tuple(events),
            computers=_strs(v["computers"], "computers"),
            criticality=_int(v["criticality"], "criticality"),
            filter=_bool(v["filter"], "filter"),
            actions=_strs(v["actions"], "actions"),
            attack=tuple(attack),
            tags=_strs(v["tags"], "tags"),
            description=_str(v["description"], "description"),
            source=source,
            sigma_id=_opt_str(v["sigma_id"], "sigma id"),
        )
        producer = _choice(v["producer"], _PRODUCERS, "producer")
    except KeyError as err:
        raise CacheFormatError(f"rule without {err}") from None
    except ValueError as err:
        if isinstance(err, CacheFormatError):
            raise
        raise CacheFormatError(f"malformed rule: {err}") from None
    return CompiledRule(ir, producer)


def _decode_rejection(v: Any, old: str, new: str) -> Rejection:
    items = _list(v, "rejection")
    if len(items) != 7:
        _bad("rejection", v)
    path, line, rule_id, title, kind, reason, correlation = items
    if old != new and old in _str(reason, "reason"):
        raise CacheFormatError("a reason names the file's former path")
    return Rejection(
        new if path == old else _str(path, "path"),
        _int(line, "line"),
        _opt_str(rule_id, "rule id"),
        _opt_str(title, "title"),
        _str(kind, "kind"),
        _str(reason, "reason"),
        _bool(correlation, "correlation"),
    )


def decode_file_result(data: Any, path: str) -> FileResult:
    """The :class:`FileResult` ``encode_file_result`` wrote, for the same file now at ``path``,
    or :class:`CacheFormatError`. Reports name the file by ``path`` (the cache key leaves the path
    out, so a moved rule directory is still a hit); a reason that quotes the former path is a miss.
    """
    if data.__class__ is not dict or data.get("format") != FORMAT:
        raise CacheFormatError("not a compiled Sigma file of this format")
    try:
        old = _str(data["path"], "path")
        return FileResult(
            [_decode_rule(r, old, path) for r in _list(data["rules"], "rules")],
            [_decode_rejection(r, old, path) for r in _list(data["file_rejections"], "file rejections")],
            [_decode_rejection(r, old, path) for r in _list(data["rule_rejections"], "rule rejections")],
        )
    except KeyError as err:
        raise CacheFormatError(f"entry without {err}") from None
    except RecursionError:
        raise CacheFormatError("condition nested too deeply") from None
