"""Helpers the generated matcher code calls: field access, cached RE2 matchers, number parsing.

Every cache here is bounded (cleared when full), keyed by the field's string value, and holds a pure
function of that value, so results never depend on what was seen before.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import orjson
import re2
from ahocorasick_rs import BytesAhoCorasick, MatchKind

from vigil.events.fields import GoNumError, go_lower, go_parse_int, go_str, parse_to_float

__all__ = [
    "CACHE_SIZE",
    "EMPTY",
    "MISSING",
    "EventStrings",
    "LiteralIndex",
    "RegexSet",
    "SingleRegex",
    "cidr_matcher",
    "container_matcher",
    "event_strings",
    "field",
    "flag",
    "json_safe",
    "keyword_matcher",
    "multiline_safe",
    "num_go",
    "num_plain",
    "value_text",
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


# Two memos, not one: an empty object and an empty list have the same key, () ("map[]" / "[]").
_MAP_TEXT: dict[tuple[tuple[str, str], ...], str] = {}
_LIST_TEXT: dict[tuple[str, ...], str] = {}


def value_text(value: Any) -> str:
    """``go_str(value)``, memoised for objects and lists of strings, which events repeat (an
    EventID ``{"Qualifiers": "0", "Value": "4"}``, a ``Data`` list): only strings in the key, so
    equal keys render alike (``1``, ``1.0`` and ``True`` are equal keys but render apart)."""
    cls = value.__class__
    if cls is dict:
        items = tuple(value.items())
        if all(k.__class__ is str and v.__class__ is str for k, v in items):
            text = _MAP_TEXT.get(items)
            if text is None:
                if len(_MAP_TEXT) >= CACHE_SIZE:
                    _MAP_TEXT.clear()
                text = _MAP_TEXT[items] = go_str(value)
            return text
    elif cls is list:
        strings = tuple(value)
        if all(v.__class__ is str for v in strings):
            text = _LIST_TEXT.get(strings)
            if text is None:
                if len(_LIST_TEXT) >= CACHE_SIZE:
                    _LIST_TEXT.clear()
                text = _LIST_TEXT[strings] = go_str(value)
            return text
    return go_str(value)


def regex_options() -> re2.Options:
    opts = re2.Options()
    opts.max_mem = 64 << 20
    return opts


#: Sets of at least this many patterns are searched through their literal atoms (``RegexSet``).
FILTER_MIN = 100


class RegexSet:
    """Several RE2 patterns searched together; ``__call__`` gives the indices that match.

    A few patterns make one RE2 Set (one pass, one DFA). Hundreds of patterns make a Set whose
    DFA states are so large that a first pass over a text spends its time building them, and on
    long texts (PowerShell script blocks) the state cache fills and is rebuilt again and again.
    Such sets use RE2's FilteredRE2 instead: one pass of a small literal DFA finds the atoms (the
    literals one of which each pattern needs; a pattern without any is always tried), then each
    pattern whose atoms were found is searched on its own. Both give exactly the patterns that
    have a match in the text.
    """

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = patterns
        if len(patterns) >= FILTER_MIN:
            flt = re2._re2.Filter()
            options = regex_options()
            for i, p in enumerate(patterns):
                if flt.Add(p.encode(), options) != i:
                    raise re2.error(f"failed to add {p!r} to a Filter")
            if not flt.Compile():
                raise re2.error("failed to compile a Filter")
            self._match: Callable[[bytes], list[int]] = partial(_filter_match, flt.Match)
        else:
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


def _filter_match(match: Callable[[bytes, bool], list[int]], text: bytes) -> list[int]:
    return match(text, False)  # False: confirm each candidate pattern (True gives the candidates)


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


class LiteralIndex:
    """Rules found by a literal of one field: ``(op, literal, rule)`` entries, op eq/startswith/endswith.

    ``__call__`` gives the rules whose literal the value equals, starts or ends with (the caller
    lowers the value for case-insensitive literals, which are stored lowered): one dict lookup for
    equality, one per distinct literal length for prefixes and suffixes.
    """

    def __init__(self, entries: list[tuple[str, str, int]]) -> None:
        eq: dict[str, set[int]] = {}
        affixes: dict[str, dict[int, dict[str, set[int]]]] = {"startswith": {}, "endswith": {}}
        for op, literal, rule in entries:
            if op == "eq":
                eq.setdefault(literal, set()).add(rule)
            elif literal:
                affixes[op].setdefault(len(literal), {}).setdefault(literal, set()).add(rule)
            else:
                raise ValueError("an empty prefix or suffix matches every value: not indexable")
        self._eq = {k: frozenset(v) for k, v in eq.items()}
        self._starts = [
            (n, {k: frozenset(v) for k, v in t.items()}) for n, t in sorted(affixes["startswith"].items())
        ]
        self._ends = [
            (n, {k: frozenset(v) for k, v in t.items()}) for n, t in sorted(affixes["endswith"].items())
        ]
        self._cache: dict[str, frozenset[int]] = {}

    def __call__(self, value: str | None) -> frozenset[int]:
        if value is None:
            return EMPTY
        cache = self._cache
        hit = cache.get(value)
        if hit is not None:
            return hit
        found: set[int] = set()
        rules = self._eq.get(value)
        if rules is not None:
            found |= rules
        size = len(value)
        for n, table in self._starts:
            if n > size:
                break
            rules = table.get(value[:n])
            if rules is not None:
                found |= rules
        for n, table in self._ends:
            if n > size:
                break
            rules = table.get(value[size - n :])
            if rules is not None:
                found |= rules
        result = frozenset(found) if found else EMPTY
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        cache[value] = result
        return result


_PROGRAM_SIZES: dict[str, int] = {}


def note_program_size(pattern: str, size: int) -> None:
    """Remember a size measured elsewhere (the Gene front end compiles every regex at load)."""
    if len(_PROGRAM_SIZES) < 65536:
        _PROGRAM_SIZES[pattern] = size


def known_program_size(pattern: str) -> int | None:
    """The size noted for ``pattern``, if any: noted sizes are of patterns RE2 compiled."""
    return _PROGRAM_SIZES.get(pattern)


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


#: Joins an event's strings for the keyword prefilter; see ``keyword_matcher`` for why it is safe.
SEPARATOR = "\n"


class EventStrings:
    """The string values under a keyword scope of one event, gathered once for all keyword rules.

    ``text`` joins them with ``SEPARATOR`` so one search over the event can rule a keyword out; a
    candidate is then confirmed value by value (a keyword never matches across two values).
    ``json`` is the scope's JSON form (orjson), a faster text to rule out the keywords that
    ``json_safe`` accepts; None when the scope cannot be encoded (lone surrogates, huge integers).
    Everything is built on first use.
    """

    __slots__ = ("_json", "_lower", "_scope", "_text", "_utf8", "_values")

    def __init__(self, scope: Any) -> None:
        self._scope = scope
        self._values: list[str] | None = None
        self._text: str | None = None
        self._lower: str | None = None
        self._utf8: bytes | None = None
        self._json: bytes | bool | None = False

    @property
    def values(self) -> list[str]:
        if self._values is None:
            scope = self._scope
            self._values = _event_strings(scope) if scope.__class__ is dict else _strings(scope)
        return self._values

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = SEPARATOR.join(self.values)
        return self._text

    @property
    def lower(self) -> str:
        """``text.lower()``: equal to the lowered values joined (the separator bounds Final_Sigma)."""
        if self._lower is None:
            self._lower = self.text.lower()
        return self._lower

    @property
    def utf8(self) -> bytes:
        if self._utf8 is None:
            self._utf8 = _utf8(self.text)
        return self._utf8

    @property
    def json(self) -> bytes | None:
        found = self._json
        if found is False:
            try:
                found = orjson.dumps(self._scope)
            except TypeError:
                found = None
            self._json = found
        return found  # type: ignore[return-value]


NO_STRINGS = EventStrings([])
NO_STRINGS._values = []


def _strings(obj: Any) -> list[str]:
    """Every string value in ``obj`` (nested objects and lists included), in no particular order."""
    if obj.__class__ is str:
        return [obj]
    out: list[str] = []
    if obj.__class__ is not dict and obj.__class__ is not list:
        return out
    append = out.append
    stack = [obj]
    pop = stack.pop
    push = stack.append
    while stack:
        x = pop()
        for v in x.values() if x.__class__ is dict else x:
            c = v.__class__
            if c is str:
                append(v)
            elif c is dict or c is list:
                push(v)
    return out


def _event_strings(event: dict[str, Any]) -> list[str]:
    """``_strings`` unrolled over the first levels of an event (``System``, ``EventData``, ``Provider``...)."""
    out: list[str] = []
    append = out.append
    deeper: list[Any] = []
    for v in event.values():
        c = v.__class__
        if c is str:
            append(v)
        elif c is dict:
            for w in v.values():
                d = w.__class__
                if d is str:
                    append(w)
                elif d is dict:
                    for y in w.values():
                        e = y.__class__
                        if e is str:
                            append(y)
                        elif e is dict or e is list:
                            deeper.append(y)
                elif d is list:
                    deeper.append(w)
        elif c is list:
            deeper.append(v)
    if deeper:
        out += _strings(deeper)
    return out


def event_strings(event: Any, scope: tuple[str, ...]) -> EventStrings:
    """Every string value under ``scope`` of the event (none when the scope is missing)."""
    obj = event
    for key in scope:
        if obj.__class__ is not dict:
            return NO_STRINGS
        obj = obj.get(key, MISSING)
        if obj is MISSING:
            return NO_STRINGS
    return EventStrings(obj)


def multiline_safe(pattern: str) -> bool:
    r"""Whether ``(?m)`` + ``pattern`` finds, in the joined text, every match of ``pattern`` in one value.

    With ``(?m)`` and values joined by ``\n``, ``^``/``$`` hold at each value's ends as at a text's
    ends, and ``\b``/``\B`` see the separator as they see a text's edge (a non-word character). Only
    ``\A``, ``\z`` and a flag group turning ``m`` off would behave differently: such patterns are
    not prefiltered.
    """
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 < n and pattern[i + 1] in "Az":
                return False
            i += 2
            continue
        if c == "(" and pattern.startswith("(?", i):
            j = i + 2
            while j < n and pattern[j] not in ":)":
                if pattern[j] == "-":
                    return False
                j += 1
        i += 1
    return True


#: Characters found verbatim in JSON holding them, and not special in a regex.
_PLAIN_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F)) - set('"\\.^$*+?()[]{}|')
_FLAG_SET = re.compile(r"\(\?[is]+\)")
_GROUP_OPEN = re.compile(r"\(\?[is]*:")


def _split_top(pattern: str) -> list[str] | None:
    """``pattern`` cut at its top-level ``|`` (None if its parentheses do not balance)."""
    parts: list[str] = []
    depth = start = i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                return None
        elif c == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    if depth != 0:
        return None
    parts.append(pattern[start:])
    return parts


def _json_literal(text: str) -> str | None:
    """The text ``text`` matches, if it is printable ASCII other than ``"`` and escaped
    punctuation, backslashes only at the start (else None).

    JSON doubles a backslash: a literal starting with backslashes is still found (after the
    first half of the doubled run), one with a backslash after another character is not.
    """
    out: list[str] = []
    i, n = 0, len(text)
    leading = True
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                return None
            x = text[i + 1]
            if x == "\\":
                if not leading:
                    return None
            elif x.isalnum() or not " " <= x <= "~" or x == '"':
                return None  # \d, \x41, \Q...: not a plain literal
            else:
                leading = False
            out.append(x)
            i += 2
            continue
        if c not in _PLAIN_CHARS:
            return None
        leading = False
        out.append(c)
        i += 1
    return "".join(out)


def _branch_literals(part: str) -> list[str] | None:
    while (flags := _FLAG_SET.match(part)) is not None:
        part = part[flags.end() :]  # (?i) and (?s) change no literal's text
    group = _GROUP_OPEN.match(part)
    if group is None:
        literal = _json_literal(part)
        return None if literal is None else [literal]
    inner = part[group.end() : -1]
    # the group must span the whole branch: then its inside balances on its own
    if not part.endswith(")") or _split_top(inner) is None:
        return None
    return json_literals(inner)


def json_literals(pattern: str) -> list[str] | None:
    """The literals of a ``json_safe`` pattern, one per alternative (None if it is not one).

    Each is the text its alternative matches, case aside: ``(?i)`` alternatives match it in any
    case (RE2 also folds the Kelvin sign into k and the long s into s, both outside ASCII).
    """
    parts = _split_top(pattern)
    if parts is None:
        return None
    literals: list[str] = []
    for part in parts:
        found = _branch_literals(part)
        if found is None:
            return None
        literals += found
    return literals


def json_safe(pattern: str) -> bool:
    r"""Whether a match of ``pattern`` in a string value is also a match in JSON holding that value.

    True for alternations of literals (``(?:(?i)a)|(?:(?i)b)``, ``(?i:a|b)``) of printable ASCII
    other than ``"``, backslashes only leading a literal; no anchor, class, dot or repetition.
    JSON copies such a substring of a value verbatim (it escapes only ``"``, ``\``, control
    characters), and whether such a pattern matches does not depend on the text around.
    """
    return json_literals(pattern) is not None


def ascii_literal_search(literals: list[str]) -> Callable[[bytes], list[Any]] | None:
    """A search of lowered ASCII bytes for the lowered ``literals``: a non-empty list when one
    occurs (None when a literal is empty or not ASCII).

    For ASCII text, a case-insensitive RE2 match of an ASCII literal is a match of the lowered
    literal in the lowered text; the Aho-Corasick automaton (Teddy, SIMD) looks for all the
    literals at once several times faster than RE2's DFA goes through the text.
    """
    if not literals or not all(lit and lit.isascii() for lit in literals):
        return None
    automaton = BytesAhoCorasick(
        list(dict.fromkeys(lit.lower().encode() for lit in literals)), matchkind=MatchKind.LeftmostFirst
    )
    # leftmost-first: a match whenever any literal occurs (the first one, then the next after it...)
    return automaton.find_matches_as_indexes


def keyword_matcher(op: str, value: str, ignore_case: bool) -> Callable[[EventStrings], bool]:
    """Any of the event's string values (``EventStrings``) matches (Sigma keywords).

    One search over the joined text first: a value that matches implies a match in the joined
    text, so a miss there (the usual case) rules the keyword out; a hit is confirmed per value.
    """
    rx = SingleRegex(("(?i)" if ignore_case else "") + value) if op == "regex" else None
    whole = None
    in_json = None
    in_ascii_json = None
    literals = json_literals(value) if rx is not None else None
    if literals is not None:
        in_json = re2.compile(("(?i)" if ignore_case else "") + value, regex_options())._regexp
        in_ascii_json = ascii_literal_search(literals)
    if rx is not None:
        multi = "(?m)" + ("(?i)" if ignore_case else "") + value
        if multiline_safe(value) and program_size(multi) <= BIG_PROGRAM:
            whole = re2.compile(multi, regex_options())._regexp
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

    def match(strings: EventStrings) -> bool:
        if strings is NO_STRINGS:
            return False
        if rx is None:
            if needle not in (strings.lower if ignore_case else strings.text):
                return False
        elif in_json is not None and (j := strings.json) is not None:
            if in_ascii_json is not None and j.isascii():
                if not in_ascii_json(j.lower()):
                    return False
            elif in_json.Match(_UNANCHORED, j, 0, len(j))[0][0] < 0:
                return False
        elif whole is not None:
            b = strings.utf8
            if whole.Match(_UNANCHORED, b, 0, len(b))[0][0] < 0:
                return False
        return any(test(s) for s in strings.values)

    return match
