"""Go value semantics gene relies on: ``%v`` stringification and ``strconv`` number parsing.

gene decodes JSON events into Go ``interface{}`` values (numbers become float64) and compares their
``fmt.Sprintf("%v")`` form; numbers in rules and events are parsed with ``strconv.ParseInt`` (base 0)
and ``ParseFloat``. Python's ``int()``/``float()``/``str()`` differ in many corner cases (octal
``010``, whitespace, ``1e+06``...), so this module implements the Go rules (gene spec §2.2, §2.4).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "GoNumError",
    "go_float_v",
    "go_json_float",
    "go_lower",
    "go_parse_float",
    "go_parse_int",
    "go_str",
    "parse_event_id",
    "parse_to_float",
]


class GoNumError(ValueError):
    """A Go ``strconv`` error; ``range_error`` is True for ErrRange (``value`` then holds the bound)."""

    def __init__(self, text: str, range_error: bool = False, value: int = 0) -> None:
        super().__init__(f"{'value out of range' if range_error else 'invalid syntax'}: {text!r}")
        self.range_error = range_error
        self.value = value


def _underscore_ok(s: str) -> bool:
    """Go ``strconv.underscoreOK``: underscores only between digits (a base prefix counts as one)."""
    saw = "^"
    i = 0
    if s[:1] in ("-", "+"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1] in "bBoOxX":
        i = 2
        saw = "0"
        hexa = s[1] in "xX"
    while i < len(s):
        c = s[i]
        if "0" <= c <= "9" or (hexa and c in "abcdefABCDEF"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
        i += 1
    return saw != "_"


def _parse_uint(s0: str, s: str, bits: int) -> int:
    """Go ``ParseUint(s, 0, bits)`` on the unsigned part ``s`` of ``s0``."""
    if not s:
        raise GoNumError(s0)
    base = 10
    if s[0] == "0":
        if len(s) >= 3 and s[1] in "bB":
            base, s = 2, s[2:]
        elif len(s) >= 3 and s[1] in "oO":
            base, s = 8, s[2:]
        elif len(s) >= 3 and s[1] in "xX":
            base, s = 16, s[2:]
        else:
            base, s = 8, s[1:]
    max_val = (1 << bits) - 1
    n = 0
    underscores = False
    for c in s:
        if c == "_":
            underscores = True
            continue
        if "0" <= c <= "9":
            d = ord(c) - 48
        elif "a" <= c <= "z":
            d = ord(c) - 87
        elif "A" <= c <= "Z":
            d = ord(c) - 55
        else:
            raise GoNumError(s0)
        if d >= base:
            raise GoNumError(s0)
        n = n * base + d
        if n > max_val:
            raise GoNumError(s0, True, max_val)
    if underscores and not _underscore_ok(s0):
        raise GoNumError(s0)
    return n


def go_parse_int(s: str, bits: int = 64) -> int:
    """Go ``strconv.ParseInt(s, 0, bits)``; raises GoNumError (with the clamped bound on range errors)."""
    if not s:
        raise GoNumError(s)
    neg = False
    body = s
    if s[0] == "+":
        body = s[1:]
    elif s[0] == "-":
        neg, body = True, s[1:]
    try:
        un = _parse_uint(s, body, bits)
    except GoNumError as err:
        if not err.range_error:
            raise
        un = err.value
    cutoff = 1 << (bits - 1)
    if not neg and un >= cutoff:
        raise GoNumError(s, True, cutoff - 1)
    if neg and un > cutoff:
        raise GoNumError(s, True, -cutoff)
    return -un if neg else un


_DEC_DIGITS = frozenset("0123456789_")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF_")


def _float_body_ok(s: str, hexa: bool) -> bool:
    """Syntax check of an unsigned Go float literal (no special values)."""
    digits = _HEX_DIGITS if hexa else _DEC_DIGITS
    exp_chars = "pP" if hexa else "eE"
    i = 0
    seen_dot = False
    seen_digit = False
    while i < len(s):
        c = s[i]
        if c in digits:
            if c != "_":
                seen_digit = True
        elif c == "." and not seen_dot:
            seen_dot = True
        else:
            break
        i += 1
    if not seen_digit:
        return False
    if i < len(s) and s[i] in exp_chars:
        i += 1
        if i < len(s) and s[i] in "+-":
            i += 1
        if i >= len(s) or not ("0" <= s[i] <= "9"):
            return False
        while i < len(s) and ("0" <= s[i] <= "9" or s[i] == "_"):
            i += 1
    elif hexa:
        return False  # a hexadecimal float needs its p exponent
    return i == len(s)


def go_parse_float(s: str) -> float:
    """Go ``strconv.ParseFloat(s, 64)``: decimal, hex (``0x1p-2``), ``inf``/``infinity``/``nan``."""
    if not s or not s.isascii():
        raise GoNumError(s)
    body = s[1:] if s[0] in "+-" else s
    low = body.lower()
    if low in ("inf", "infinity"):
        return -math.inf if s[0] == "-" else math.inf
    if s.lower() == "nan":
        return math.nan
    hexa = len(body) >= 2 and body[0] == "0" and body[1] in "xX"
    if not _float_body_ok(body[2:] if hexa else body, hexa):
        raise GoNumError(s)
    if "_" in s:
        if not _underscore_ok(s):
            raise GoNumError(s)
        s = s.replace("_", "")
    try:
        value = float.fromhex(s) if hexa else float(s)
    except (ValueError, OverflowError):
        raise GoNumError(s, True) from None
    if math.isinf(value):
        raise GoNumError(s, True)
    return value


def parse_to_float(s: str) -> float:
    """gene ``parseToFloat``: Go ParseInt base 0 (as float64), else ParseFloat; GoNumError if neither."""
    try:
        return float(go_parse_int(s, 64))
    except GoNumError:
        return go_parse_float(s)


def parse_event_id(value: Any) -> int:
    """EventID as gene reads it: ParseInt(%v string, 0, 32); syntax error -> 0, range -> clamped."""
    text = value if value.__class__ is str else go_str(value)
    if text.isascii() and text.isdigit() and len(text) < 10 and text[0] != "0":
        return int(text)
    try:
        return go_parse_int(text, 32)
    except GoNumError as err:
        return err.value if err.range_error else 0


def _shortest_digits(f: float) -> tuple[str, int]:
    """Shortest round-trip digits of ``abs(f)`` (finite, non-zero) and the decimal point position."""
    r = repr(abs(f))
    exp = 0
    if "e" in r:
        r, e = r.split("e")
        exp = int(e)
    ip, _, fp = r.partition(".")
    raw = ip + fp
    stripped = raw.lstrip("0")
    dp = len(ip) + exp - (len(raw) - len(stripped))
    return stripped.rstrip("0"), dp


def _exp_form(digits: str, dp: int) -> str:
    x = dp - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"


def _plain_form(digits: str, dp: int) -> str:
    nd = len(digits)
    if dp <= 0:
        return "0." + "0" * (-dp) + digits
    if dp >= nd:
        return digits + "0" * (dp - nd)
    return digits[:dp] + "." + digits[dp:]


def go_float_v(f: float) -> str:
    """Go ``fmt.Sprintf("%v", float64)``: shortest digits, exponent form when the exponent is < -4 or >= 6."""
    if math.isnan(f):
        return "NaN"
    if f in (math.inf, -math.inf):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    digits, dp = _shortest_digits(f)
    sign = "-" if f < 0 else ""
    nd = len(digits)
    eprec = 6
    if eprec > nd >= dp:
        eprec = nd
    x = dp - 1
    if x < -4 or x >= eprec:
        return sign + _exp_form(digits, dp)
    return sign + _plain_form(digits, dp)


def go_json_float(f: float) -> str:
    """Go ``encoding/json`` float64 form (ES6 style: ``1e+21``, ``0.000001``, ``1e-7``)."""
    if math.isinf(f) or math.isnan(f):
        raise ValueError(f"json: unsupported value: {go_float_v(f)}")  # as Go's Marshal
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    digits, dp = _shortest_digits(f)
    sign = "-" if f < 0 else ""
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        text = _exp_form(digits, dp)
        if text[-4:-1] == "e-0":
            text = text[:-2] + text[-1]
        return sign + text
    return sign + _plain_form(digits, dp)


def go_str(value: Any) -> str:
    """Go ``%v`` of a JSON-decoded value (numbers are float64 in Go)."""
    cls = value.__class__
    if cls is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return "<nil>"
    if cls is bool:
        return "true" if value else "false"
    if cls is int:
        if -(1 << 53) <= value <= (1 << 53):
            return go_float_v(float(value)) if abs(value) >= 1000000 else str(value)
        try:
            return go_float_v(float(value))
        except OverflowError:
            return "+Inf" if value > 0 else "-Inf"
    if cls is float:
        return go_float_v(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_str(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def go_lower(s: str) -> str:
    """Go ``strings.ToLower``: simple one-to-one rune mapping (``İ`` becomes ``i``, not ``i̇``)."""
    if s.isascii():
        return s.lower()
    out = []
    for c in s:
        low = c.lower()
        out.append(low if len(low) == 1 else ("i" if c == "\u0130" else c))
    return "".join(out)
