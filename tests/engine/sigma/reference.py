"""A tiny reference evaluator of vigil's predicate IR, for the Sigma front end's tests only.

It follows the contract in ``vigil/engine/ir.py`` literally and slowly (no index, no code
generation), so the Sigma tests can check the semantics of the IR the front end produces before
the real compiler is wired in. Never shipped.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Any

import re2

from vigil.engine.ir import (
    And,
    CidrMatch,
    Const,
    Exists,
    FieldPath,
    FieldRefMatch,
    KeywordMatch,
    Node,
    Not,
    NumCmp,
    Or,
    RegexMatch,
    RuleIR,
    StrMatch,
)

_MISSING = object()
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_REGEX_CACHE: dict[str, Any] = {}


def _get(event: Mapping[str, Any], path: FieldPath) -> Any:
    node: Any = event
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _strop(op: str, value: str, pattern: str, ignore_case: bool) -> bool:
    if ignore_case:
        value, pattern = value.lower(), pattern.lower()
    if op == "eq":
        return value == pattern
    if op == "contains":
        return pattern in value
    if op == "startswith":
        return value.startswith(pattern)
    if op == "endswith":
        return value.endswith(pattern)
    raise AssertionError(op)


def _search(pattern: str, value: str) -> bool:
    compiled = _REGEX_CACHE.get(pattern)
    if compiled is None:
        compiled = _REGEX_CACHE[pattern] = re2.compile(pattern)
    return compiled.search(value) is not None


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def evaluate(node: Node, event: Mapping[str, Any]) -> bool:
    match node:
        case Const():
            return node.value
        case Not():
            return not evaluate(node.child, event)
        case And():
            return all(evaluate(c, event) for c in node.children)
        case Or():
            return any(evaluate(c, event) for c in node.children)
        case Exists():
            return (_get(event, node.field) is not _MISSING) == node.present
        case StrMatch():
            v = _get(event, node.field)
            return v is not _MISSING and _strop(node.op, _string(v), node.value, node.ignore_case)
        case RegexMatch():
            v = _get(event, node.field)
            return v is not _MISSING and _search(node.pattern, _string(v))
        case NumCmp():
            v = _get(event, node.field)
            if v is _MISSING:
                return False
            s = _string(v).strip()
            if not _PLAIN_NUMBER.match(s):
                return False
            x = float(s)
            return {"<": x < node.value, "<=": x <= node.value, ">": x > node.value, ">=": x >= node.value}[
                node.op
            ]
        case FieldRefMatch():
            a, b = _get(event, node.field), _get(event, node.other)
            if a is _MISSING or b is _MISSING:
                return False
            return _strop(node.op, _string(a), _string(b), node.ignore_case)
        case CidrMatch():
            v = _get(event, node.field)
            if v is _MISSING:
                return False
            try:
                ip = ipaddress.ip_address(_string(v).strip())
            except ValueError:
                return False
            return any(ip in ipaddress.ip_network(n, strict=False) for n in node.networks)
        case KeywordMatch():
            scope = _get(event, node.scope)
            if scope is _MISSING:
                return False
            if node.op == "regex":
                return any(_search(node.value, s) for s in _strings(scope))
            return any(_strop(node.op, s, node.value, node.ignore_case) for s in _strings(scope))
    raise AssertionError(f"node kind not handled by the reference evaluator: {node!r}")


def _event_id(event: Mapping[str, Any]) -> int | None:
    raw = _get(event, ("Event", "System", "EventID"))
    try:
        return int(_string(raw))
    except ValueError:
        return 0 if isinstance(raw, Mapping) else None


def applies(rule: RuleIR, event: Mapping[str, Any]) -> bool:
    """The rule's meta filter (channel, EventIDs) accepts the event."""
    if not rule.events:
        return True
    channel = _get(event, ("Event", "System", "Channel"))
    return any(channel == wanted and (not ids or _event_id(event) in ids) for wanted, ids in rule.events)


def matches(rule: RuleIR, event: Mapping[str, Any]) -> bool:
    return applies(rule, event) and evaluate(rule.condition, event)
