"""Byte-exact Go ``encoding/json`` output for decoded events (what gene prints).

Go marshals maps with sorted keys, escapes ``<`` ``>`` ``&`` and U+2028/U+2029, writes control
characters other than ``\\n \\r \\t`` as ``\\u00XX`` and formats every number as a float64 in ES6
style. orjson (with sorted keys) does the heavy lifting; the few differences are patched on its
bytes: ``<>&`` and U+2028/9 can only occur inside strings, so a plain replace is safe; numbers that
orjson would print differently are wrapped as ``orjson.Fragment`` first.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from vigil.events.fields import go_json_float

__all__ = ["GoStruct", "dumps", "go_escape"]

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_SAFE_INT = 1 << 53
#: ``\b`` or ``\f`` in orjson's output (maybe the end of an escaped backslash: checked after).
_SHORT_ESCAPE = re.compile(rb"\\[bf]")


class GoStruct(dict):  # type: ignore[type-arg]
    """A dict marshalled in insertion order, like a Go struct (gene's ``GeneInfo``).

    Supported at ``obj["Event"]["GeneInfo"]`` (where gene attaches it) and nested in it.
    """


def _struct_bytes(obj: Any) -> bytes:
    if isinstance(obj, GoStruct):
        return b"{" + b",".join(orjson.dumps(k) + b":" + _struct_bytes(v) for k, v in obj.items()) + b"}"
    if isinstance(obj, list):
        return b"[" + b",".join(_struct_bytes(v) for v in obj) + b"]"
    return orjson.dumps(obj, option=_OPTS)


def _with_structs(obj: Any) -> Any:
    """Replace a GoStruct GeneInfo by its pre-rendered bytes (orjson would sort its keys)."""
    if obj.__class__ is dict:
        ev = obj.get("Event")
        if ev.__class__ is dict:
            info = ev.get("GeneInfo")
            if isinstance(info, GoStruct):
                ev = dict(ev)
                ev["GeneInfo"] = orjson.Fragment(_struct_bytes(info))
                obj = dict(obj)
                obj["Event"] = ev
    return obj


def _has_odd_number(obj: Any) -> bool:
    """True if ``obj`` holds a float or an int that Go would print differently than orjson."""
    cls = obj.__class__
    if cls is dict:
        values = obj.values()
    elif cls is list:
        values = obj
    else:
        return cls is float or (cls is int and not -_SAFE_INT <= obj <= _SAFE_INT)
    for v in values:
        c = v.__class__
        if c is str:
            continue
        if c is dict or c is list:
            if _has_odd_number(v):
                return True
        elif c is float or (c is int and not -_SAFE_INT <= v <= _SAFE_INT):
            return True
    return False


def _go_numbers(obj: Any) -> Any:
    cls = obj.__class__
    if cls is dict:
        return {k: _go_numbers(v) for k, v in obj.items()}
    if cls is list:
        return [_go_numbers(v) for v in obj]
    if cls is float or (cls is int and not -_SAFE_INT <= obj <= _SAFE_INT):
        try:
            return orjson.Fragment(go_json_float(float(obj)).encode())
        except OverflowError:
            return obj
    return obj


def dumps(obj: Any, *, sort_keys: bool = True) -> bytes:
    """Go ``json.Marshal(obj)`` for a JSON-decoded value (dict/list/str/int/float/bool/None).

    ``sort_keys=False`` keeps every dict in insertion order (for values built as Go structs).
    """
    if isinstance(obj, GoStruct):
        return go_escape(_struct_bytes(obj))
    obj = _with_structs(obj)
    opts = _OPTS if sort_keys else orjson.OPT_NON_STR_KEYS
    try:
        out = orjson.dumps(obj, option=opts)
    except TypeError:
        # Lone surrogates (from \\ud800 escapes): Go writes U+FFFD for invalid UTF-8.
        obj = _fix_surrogates(obj)
        out = orjson.dumps(obj, option=opts)
    # Only floats and integers beyond 2**53 print differently from Go: re-render if there are any.
    if _has_odd_number(obj):
        out = orjson.dumps(_go_numbers(obj), option=opts)
    return go_escape(out)


def go_escape(out: bytes) -> bytes:
    """Turn orjson's string escaping into Go's (``<>&`` U+2028/9 escaped, ``\\u0008`` not ``\\b``).

    ``find``, not ``in``: ``bytes in bytes`` first tries its operand as a byte value and builds
    (then drops) a TypeError, several times the cost of the search itself.
    """
    if out.find(b"<") >= 0:
        out = out.replace(b"<", b"\\u003c")
    if out.find(b">") >= 0:
        out = out.replace(b">", b"\\u003e")
    if out.find(b"&") >= 0:
        out = out.replace(b"&", b"\\u0026")
    # a one-byte search (memchr) rules most out first
    if out.find(b"\xe2") >= 0 and out.find(b"\xe2\x80") >= 0:
        out = out.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
    if _SHORT_ESCAPE.search(out) is not None:  # one pass instead of two "in" scans (backslashes abound)
        # A literal backslash is always written "\\\\"; hide those pairs (NUL never appears raw in
        # JSON output) so the remaining "\\b" / "\\f" are orjson's escapes, which Go writes as \\u00XX.
        hidden = out.replace(b"\\\\", b"\x00\x00")
        if _SHORT_ESCAPE.search(hidden) is not None:
            hidden = hidden.replace(b"\\b", b"\\u0008").replace(b"\\f", b"\\u000c")
            out = hidden.replace(b"\x00\x00", b"\\\\")
    return out


def _fix_surrogates(obj: Any) -> Any:
    cls = obj.__class__
    if cls is str:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in obj)
    if cls is dict:
        return {_fix_surrogates(k): _fix_surrogates(v) for k, v in obj.items()}
    if cls is list:
        return [_fix_surrogates(v) for v in obj]
    return obj
