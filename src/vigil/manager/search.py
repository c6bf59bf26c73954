"""Search windows of ``/logs``, ``/detections`` and report archives (WHIDS spec §2.5, §5.2)."""

from __future__ import annotations

from dataclasses import dataclass

from vigil.manager.errors import BadRequest
from vigil.manager.times import parse_duration, parse_rfc3339

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Window", "parse_limit", "parse_skip", "resolve_window"]

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
HOUR = 3_600_000_000_000
DEFAULT_DELTA = 10 * 60 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Window:
    start: int
    stop: int


def resolve_window(
    now: int,
    *,
    since: str | None = None,
    until: str | None = None,
    last: str | None = None,
    pivot: str | None = None,
    delta: str | None = None,
    default: int = HOUR,
) -> Window:
    """``last`` wins; else ``pivot`` ± ``delta`` (10 min); else ``since``/``until``; else the last hour."""
    if last:
        return Window(now - parse_duration(last, "last"), now)
    if pivot:
        center = parse_rfc3339(pivot, "pivot")
        width = parse_duration(delta, "delta") if delta else DEFAULT_DELTA
        if width < 0:
            raise BadRequest("delta must not be negative", field="delta")
        return Window(center - width, center + width)
    if since or until:
        stop = parse_rfc3339(until, "until") if until else now
        start = parse_rfc3339(since, "since") if since else stop - default
        if start > stop:
            raise BadRequest("since is after until", field="since")
        return Window(start, stop)
    return Window(now - default, now)


def parse_limit(value: str | None, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """WHIDS ignores a bad limit (default 1000) and caps it at 10 000."""
    try:
        limit = int(value) if value else default
    except ValueError:
        return default
    if limit <= 0:
        return default
    return min(limit, maximum)


def parse_skip(value: str | None) -> int:
    try:
        return max(0, int(value)) if value else 0
    except ValueError:
        return 0
