"""Time values on the wire: RFC 3339 (nanoseconds, as Go prints them) and Go durations (+ ``Nd``).

Timestamps are kept as integer nanoseconds since the Unix epoch (UTC) everywhere in the manager.
"""

from __future__ import annotations

import calendar
import re
import time

from vigil.manager.errors import BadRequest

__all__ = ["format_ns", "now_ns", "parse_duration", "parse_rfc3339"]

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9})\d*)?(Z|z|[+-]\d{2}:\d{2})?\Z"
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}
_SECOND_CACHE: dict[str, int] = {}


def now_ns() -> int:
    return time.time_ns()


def parse_rfc3339(text: str, field: str = "time") -> int:
    """Parse an RFC 3339 timestamp to epoch nanoseconds; a missing zone means UTC."""
    # Fast path for the common agent form "YYYY-MM-DDTHH:MM:SS[.fffffffff]Z" seen before.
    seconds = _SECOND_CACHE.get(text[:19])
    if seconds is not None and text[-1:] == "Z":
        frac = text[20:-1]
        if len(text) == 20:
            return seconds * 1_000_000_000
        if text[19] == "." and 0 < len(frac) <= 9 and frac.isdigit():
            return seconds * 1_000_000_000 + int(frac.ljust(9, "0"))
    match = _RFC3339.match(text.strip())
    if match is None:
        raise BadRequest(f"{field}: {text!r} is not an RFC 3339 timestamp", field=field)
    year, month, day, hour, minute, second, frac, zone = match.groups()
    key = text[:19]
    seconds = _SECOND_CACHE.get(key) if key[10:11] in ("T", "t", " ") else None
    if seconds is None:
        y, mo, d, h, mi, sec = (int(v) for v in (year, month, day, hour, minute, second))
        if not (
            1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1] and h < 24 and mi < 60 and sec < 61
        ):
            raise BadRequest(f"{field}: {text!r} is out of range", field=field)
        seconds = calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0))
        if len(_SECOND_CACHE) > 100_000:
            _SECOND_CACHE.clear()
        _SECOND_CACHE[key] = seconds
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    nanos = int(frac.ljust(9, "0")) if frac else 0
    return seconds * 1_000_000_000 + nanos


def format_ns(ns: int) -> str:
    """Format epoch nanoseconds as Go's RFC3339Nano in UTC (trailing fractional zeros dropped)."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if nanos:
        return f"{base}.{nanos:09d}".rstrip("0") + "Z"
    return base + "Z"


def parse_duration(text: str, field: str = "duration") -> int:
    """Parse a Go duration (``90s``, ``1h30m``, ``1.5h``) or ``Nd`` days into nanoseconds."""
    value = text.strip()
    sign = 1
    if value[:1] in "+-" and value:
        sign = -1 if value[0] == "-" else 1
        value = value[1:]
    if value == "0":
        return 0
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if not value or pos != len(value):
        raise BadRequest(f"{field}: {text!r} is not a duration (e.g. 90s, 1h30m, 2d)", field=field)
    return sign * int(total)
