"""Sigma values (after pySigma applied the modifiers) -> IR leaves.

pySigma turns each ``field|modifiers: value`` into a typed value: ``SigmaString`` with wildcard
parts (``contains``/``startswith``/``endswith``/``windash``/``base64``/``utf16*`` already applied),
``SigmaCasedString`` (``cased``), ``SigmaExpansion`` (alternatives from ``windash`` and
``base64offset``, always OR-linked), ``SigmaRegularExpression`` (``re`` with flags ``i m s``),
``SigmaCIDRExpression``, ``SigmaCompareExpression`` (``lt lte gt gte``), ``SigmaFieldReference``,
``SigmaExists``, ``SigmaNull``, ``SigmaNumber`` and ``SigmaBool``. This module maps each one to the
IR; the semantics are documented in ``docs/sigma.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import re2
from sigma.modifiers import SigmaWideModifier, modifier_mapping
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
)

from vigil.engine import runtime
from vigil.engine.ir import (
    And,
    CidrMatch,
    Exists,
    FieldPath,
    FieldRefMatch,
    KeywordMatch,
    Node,
    Not,
    NumCmp,
    Or,
    RegexMatch,
    StrMatch,
    StrOp,
)
from vigil.engine.sigma.errors import UnsupportedConstruct
from vigil.engine.sigma.fields import field_paths
from vigil.engine.sigma.options import CompileOptions

# The specification names UTF-16LE encoding ``utf16le`` (``wide`` is its alias); pySigma 2.0 only
# registers ``wide``. Register the specification's name for the same modifier.
modifier_mapping.setdefault("utf16le", SigmaWideModifier)

__all__ = ["CompileOptions", "escape_regex", "field_value_node", "keyword_node", "wildcard_regex"]

_REGEX_META = frozenset("\\.+*?()|[]{}^$")
_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}
_NUM_OPS: dict[CompareOperators, Literal["<", "<=", ">", ">="]] = {
    CompareOperators.LT: "<",
    CompareOperators.LTE: "<=",
    CompareOperators.GT: ">",
    CompareOperators.GTE: ">=",
}


def _any(nodes: list[Node]) -> Node:
    return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))


def _all(nodes: list[Node]) -> Node:
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def escape_regex(text: str) -> str:
    """``text`` as an RE2 literal."""
    return "".join("\\" + c if c in _REGEX_META else c for c in text)


def _parts(s: SigmaString) -> list[str | SpecialChars]:
    """The string's parts with adjacent plain strings merged; placeholders must be gone."""
    out: list[str | SpecialChars] = []
    for part in s.s:
        if isinstance(part, Placeholder):
            raise UnsupportedConstruct(f"placeholder %{part.name}% left in value {s.original!r}")
        if isinstance(part, str) and out and isinstance(out[-1], str):
            out[-1] += part
        elif part != "":
            out.append(part)
    return out


def wildcard_regex(parts: list[str | SpecialChars], *, cased: bool, anchored: bool) -> str:
    """RE2 pattern of a wildcard string: ``*`` any run (newlines included), ``?`` one character."""
    body = []
    for part in parts:
        if part is SpecialChars.WILDCARD_MULTI:
            body.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            body.append(".")
        else:
            body.append(escape_regex(str(part)))
    start = anchored and parts[:1] != [SpecialChars.WILDCARD_MULTI]
    end = anchored and parts[-1:] != [SpecialChars.WILDCARD_MULTI]
    if not start and body[:1] == [".*"]:
        body = body[1:]
    if not end and body[-1:] == [".*"]:
        body = body[:-1]
    flags = "(?s)" if cased else "(?is)"
    return flags + ("^" if start else "") + "".join(body) + ("$" if end else "")


def _simple_op(parts: list[str | SpecialChars]) -> tuple[StrOp, str] | None:
    """The plain string test equal to a wildcard string, when there is one."""
    multi = SpecialChars.WILDCARD_MULTI
    texts = [p for p in parts if isinstance(p, str)]
    specials = [p for p in parts if not isinstance(p, str)]
    if not specials:
        return "eq", "".join(texts)
    if any(p is not multi for p in specials) or len(texts) > 1:
        return None
    text = texts[0] if texts else ""
    if parts in ([multi], [multi, multi]):
        return "startswith", ""
    if parts == [multi, text, multi]:
        return "contains", text
    if parts == [text, multi]:
        return "startswith", text
    if parts == [multi, text]:
        return "endswith", text
    return None


def _check_re2(pattern: str, what: str) -> str:
    try:
        runtime.program_size(pattern)  # compiles it, and keeps the size the engine needs later
    except re2.error as e:
        raise UnsupportedConstruct(f"{what} {pattern!r} is not valid RE2 (vigil's regex dialect): {e}") from e
    return pattern


def _expand_placeholders(s: SigmaString, opts: CompileOptions) -> list[SigmaString]:
    if not s.contains_placeholder():
        return [s]

    def values(p: Placeholder) -> Iterator[str | SpecialChars | Placeholder]:
        if p.name not in opts.placeholders:
            raise UnsupportedConstruct(f"placeholder %{p.name}% has no values in the Sigma configuration")
        yield from opts.placeholders[p.name]

    expanded = s.replace_placeholders(values)
    if isinstance(s, SigmaCasedString):
        return [SigmaCasedString.from_sigma_string(x) for x in expanded]
    return expanded


def _string_leaf(path: FieldPath, s: SigmaString) -> Node:
    cased = isinstance(s, SigmaCasedString)
    parts = _parts(s)
    simple = _simple_op(parts)
    if simple is not None:
        op, text = simple
        return StrMatch(path, op, text, ignore_case=not cased)
    return RegexMatch(path, _check_re2(wildcard_regex(parts, cased=cased, anchored=True), "wildcard value"))


def _regex_pattern(value: SigmaRegularExpression) -> str:
    flags = "".join(sorted(_RE_FLAGS[f] for f in value.flags))
    pattern = str(value.regexp)
    return _check_re2((f"(?{flags})" if flags else "") + pattern, "regular expression")


def _on_paths(name: str, channels: tuple[str, ...], make: Callable[[FieldPath], Node]) -> Node:
    return _any([make(p) for p in field_paths(name, channels)])


def _null(path: FieldPath) -> Node:
    return Or((Not(Exists(path)), StrMatch(path, "eq", "<nil>"), StrMatch(path, "eq", "")))


def field_value_node(
    name: str, value: SigmaType, opts: CompileOptions, channels: tuple[str, ...] = ()
) -> Node:
    """The IR of ``name == value`` for one (modified) Sigma value, in a rule on ``channels``."""
    paths = field_paths(name, channels)
    match value:
        case SigmaExpansion():
            return _any([field_value_node(name, v, opts, channels) for v in value.values])
        case SigmaString():
            strings = _expand_placeholders(value, opts)
            return _any([_on_paths(name, channels, lambda p, s=s: _string_leaf(p, s)) for s in strings])  # type: ignore[misc]
        case SigmaRegularExpression():
            pattern = _regex_pattern(value)
            return _on_paths(name, channels, lambda p: RegexMatch(p, pattern))
        case SigmaBool():
            text = "true" if value.boolean else "false"
            return _on_paths(name, channels, lambda p: StrMatch(p, "eq", text, ignore_case=True))
        case SigmaTimestampPart():
            raise UnsupportedConstruct(
                f"time-part modifier ({value.timestamp_part.name.lower()}) on field {name!r}: "
                "vigil's IR has no date-part node"
            )
        case SigmaNumber():
            text = str(value.number)
            return _on_paths(name, channels, lambda p: StrMatch(p, "eq", text))
        case SigmaNull():
            return _all([_null(p) for p in paths])
        case SigmaExists():
            if value.exists:
                return _any([Exists(p) for p in paths])
            return _all([Exists(p, present=False) for p in paths])
        case SigmaCIDRExpression():
            cidr = value.cidr
            return _on_paths(name, channels, lambda p: CidrMatch(p, (cidr,)))
        case SigmaCompareExpression():
            number = float(value.number.number)
            if value.op is CompareOperators.NEQ:
                return _on_paths(
                    name,
                    channels,
                    lambda p: Or((NumCmp(p, "<", number, "plain"), NumCmp(p, ">", number, "plain"))),
                )
            num_op = _NUM_OPS[value.op]
            return _on_paths(name, channels, lambda p: NumCmp(p, num_op, number, "plain"))
        case SigmaFieldReference():
            op: StrOp = "eq"
            if value.starts_with and value.ends_with:
                op = "contains"
            elif value.starts_with:
                op = "startswith"
            elif value.ends_with:
                op = "endswith"
            others = field_paths(value.field, channels)
            return _any([FieldRefMatch(p, o, op, ignore_case=True) for p in paths for o in others])
    raise UnsupportedConstruct(f"value of type {type(value).__name__} on field {name!r} has no vigil IR form")


def _keyword_leaf(s: SigmaString) -> Node:
    cased = isinstance(s, SigmaCasedString)
    parts = _parts(s)
    multi = SpecialChars.WILDCARD_MULTI
    while parts[:1] == [multi]:
        parts = parts[1:]
    while parts[-1:] == [multi]:
        parts = parts[:-1]
    if all(isinstance(p, str) for p in parts):
        return KeywordMatch("contains", "".join(str(p) for p in parts), ignore_case=not cased)
    return KeywordMatch(
        "regex",
        _check_re2(wildcard_regex(parts, cased=cased, anchored=False), "keyword"),
        ignore_case=not cased,
    )


def keyword_node(value: SigmaType, opts: CompileOptions) -> Node:
    """The IR of a keyword: the value found in any string of the event (substring match)."""
    match value:
        case SigmaExpansion():
            return _any([keyword_node(v, opts) for v in value.values])
        case SigmaString():
            return _any([_keyword_leaf(s) for s in _expand_placeholders(value, opts)])
        case SigmaRegularExpression():
            return KeywordMatch("regex", _regex_pattern(value), ignore_case=False)
        case SigmaNumber() | SigmaBool():
            return KeywordMatch(
                "contains", str(value).lower() if isinstance(value, SigmaBool) else str(value)
            )
    raise UnsupportedConstruct(f"keyword of type {type(value).__name__} has no vigil IR form")
