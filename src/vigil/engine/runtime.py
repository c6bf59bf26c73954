"""Helpers the generated matcher code calls: field access, cached RE2 matchers, number parsing.

Every cache here is bounded (cleared when full), keyed by the field's string value, and holds a pure
function of that value, so results never depend on what was seen before.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import re2

from vigil.events.fields import GoNumError, go_lower, go_parse_int, go_str, parse_to_float

__all__ = [
    "CACHE_SIZE",
    "EMPTY",
    "MISSING",
    "RegexSet",
    "SingleRegex",
    "cidr_matcher",
    "container_matcher",
    "field",
    "flag",
    "keyword_matcher",
    "num_go",
    "num_plain",
]

CACHE_SIZE = 4096
MISSING: Any = object()
EMPTY: frozenset[int] = frozenset()
_UNANCHORED = re2._Anchor.UNANCHORED
#: RE2 programs above this size are matched one by one (a Set's DFA could run out of memory).
BIG_PROGRAM = 2000


def _utf8(s: str) -> bytes:
    try:
        return s.encode()
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in s).encode()


def field(obj: Any, path: tuple[str, ...]) -> str | None:
    """String form of the value at ``path`` (None when missing)."""
    for key in path:
        if obj.__class__ is not dict:
            return None
        obj = obj.get(key, MISSING)
        if obj is MISSING:
            return None
    return obj if obj.__class__ is str else go_str(obj)


def regex_options() -> re2.Options:
    opts = re2.Options()
    opts.max_mem = 64 << 20
    return opts


class RegexSet:
    """Several RE2 patterns searched in one pass; ``__call__`` gives the indices that match."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = patterns
        rset = re2.Set.SearchSet(regex_options())
        for p in patterns:
            rset.Add(p)
        rset.Compile()
        self._match = rset._set.Match
        self._cache: dict[str, frozenset[int]] = {}

    def __call__(self, value: str | None) -> frozenset[int]:
        if value is None:
            return EMPTY
        cache = self._cache
        hit = cache.get(value)
        if hit is not None:
            return hit
        found = self._match(_utf8(value))
        result = frozenset(found) if found else EMPTY
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        cache[value] = result
        return result


class SingleRegex:
    """One RE2 pattern, unanchored search, boolean result."""

    def __init__(self, pattern: str) -> None:
        self._re = re2.compile(pattern, regex_options())._regexp
        self._cache: dict[str, bool] = {}

    def __call__(self, value: str | None) -> bool:
        if value is None:
            return False
        hit = self._cache.get(value)
        if hit is not None:
            return hit
        b = _utf8(value)
        result: bool = self._re.Match(_UNANCHORED, b, 0, len(b))[0][0] >= 0
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[value] = result
        return result


_PROGRAM_SIZES: dict[str, int] = {}


def note_program_size(pattern: str, size: int) -> None:
    """Remember a size measured elsewhere (the Gene front end compiles every regex at load)."""
    if len(_PROGRAM_SIZES) < 65536:
        _PROGRAM_SIZES[pattern] = size


def program_size(pattern: str) -> int:
    """RE2 program size of ``pattern`` (memoised: rule sets repeat patterns)."""
    size = _PROGRAM_SIZES.get(pattern)
    if size is None:
        size = int(re2.compile(pattern)._regexp.ProgramSize())
        if len(_PROGRAM_SIZES) >= 65536:
            _PROGRAM_SIZES.clear()
        _PROGRAM_SIZES[pattern] = size
    return size


_NUM_CACHE: dict[str, float] = {}
_PLAIN = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def num_go(value: str | None) -> float:
    """gene ``parseToFloat`` of a field; NaN (never compares true) when missing or unparsable."""
    if value is None:
        return math.nan
    hit = _NUM_CACHE.get(value)
    if hit is None:
        try:
            hit = parse_to_float(value)
        except GoNumError:
            hit = math.nan
        if len(_NUM_CACHE) >= CACHE_SIZE:
            _NUM_CACHE.clear()
        _NUM_CACHE[value] = hit
    return hit


def num_plain(value: str | None) -> float:
    """Decimal integer or float only (Sigma comparisons); NaN otherwise."""
    if value is None or _PLAIN.fullmatch(value) is None:
        return math.nan
    return float(value)


def flag(value: str | None, mask: int) -> bool:
    """gene ``&=``: Go ParseInt base 0 of the field, all bits of ``mask`` set."""
    if value is None:
        return False
    try:
        n = go_parse_int(value, 64)
    except GoNumError:
        return False
    return (n & mask) == mask


def container_matcher(
    pattern: str, group: str, name: str, containers: Mapping[str, set[str]]
) -> Callable[..., bool]:
    """gene ``extract('re', F) in C``: first match's group (``""`` if not taking part), lower-cased, in C."""
    rx = re2.compile(pattern)
    index = rx.groupindex[group]
    raw = rx._regexp

    def match(value: str | None) -> bool:
        if value is None:
            return False
        values = containers.get(name)
        if values is None:
            return False
        b = _utf8(value)
        spans = raw.Match(_UNANCHORED, b, 0, len(b))
        if spans[0][0] < 0:
            return False
        start, end = spans[index]
        extracted = b[start:end].decode("utf-8", "replace") if start >= 0 else ""
        return go_lower(extracted) in values

    return match


def cidr_matcher(networks: tuple[str, ...]) -> Callable[..., bool]:
    nets = [ipaddress.ip_network(n, strict=False) for n in networks]
    cache: dict[str, bool] = {}

    def match(value: str | None) -> bool:
        if value is None:
            return False
        hit = cache.get(value)
        if hit is None:
            try:
                addr = ipaddress.ip_address(value)
            except ValueError:
                hit = False
            else:
                hit = any(addr.version == n.version and addr in n for n in nets)
            if len(cache) >= CACHE_SIZE:
                cache.clear()
            cache[value] = hit
        return hit

    return match


def _strings(obj: Any) -> list[str]:
    out: list[str] = []
    stack = [obj]
    while stack:
        x = stack.pop()
        if x.__class__ is str:
            out.append(x)
        elif x.__class__ is dict:
            stack.extend(x.values())
        elif x.__class__ is list:
            stack.extend(x)
    return out


def keyword_matcher(op: str, value: str, ignore_case: bool, scope: tuple[str, ...]) -> Callable[..., bool]:
    """Any string value under ``scope`` of the event matches (Sigma keywords)."""
    rx = SingleRegex(("(?i)" if ignore_case else "") + value) if op == "regex" else None
    needle = value.lower() if ignore_case else value

    def test(s: str) -> bool:
        if rx is not None:
            return rx(s)
        if ignore_case:
            s = s.lower()
        if op == "eq":
            return s == needle
        if op == "contains":
            return needle in s
        if op == "startswith":
            return s.startswith(needle)
        return s.endswith(needle)

    def match(event: Any) -> bool:
        obj = event
        for key in scope:
            if obj.__class__ is not dict:
                return False
            obj = obj.get(key, MISSING)
            if obj is MISSING:
                return False
        return any(test(s) for s in _strings(obj))

    return match
