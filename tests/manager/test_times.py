from __future__ import annotations

import pytest

from vigil.manager.errors import BadRequest
from vigil.manager.search import parse_limit, parse_skip, resolve_window
from vigil.manager.times import format_ns, parse_duration, parse_rfc3339

H = 3_600_000_000_000


def test_rfc3339_round_trip_with_nanoseconds() -> None:
    ns = parse_rfc3339("2021-10-04T03:47:28.7994921Z")
    assert ns == 1633319248_799492100
    assert format_ns(ns) == "2021-10-04T03:47:28.7994921Z"
    assert parse_rfc3339("2021-10-04T05:47:28.7994921+02:00") == ns
    assert format_ns(0) == "1970-01-01T00:00:00Z"


@pytest.mark.parametrize(
    "bad", ["", "yesterday", "2021-13-01T00:00:00Z", "2021-10-04 03:47", "2021-02-30T00:00:00Z"]
)
def test_bad_timestamps_name_the_field(bad: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_rfc3339(bad, "since")
    assert err.value.field == "since"


def test_go_durations_and_days() -> None:
    assert parse_duration("90s") == 90_000_000_000
    assert parse_duration("1h30m") == 5400_000_000_000
    assert parse_duration("1.5h") == 5400_000_000_000
    assert parse_duration("2d") == 48 * H
    assert parse_duration("250ms") == 250_000_000
    for bad in ("", "10", "1x", "h", "1h 2m"):
        with pytest.raises(BadRequest):
            parse_duration(bad, "last")


def test_windows() -> None:
    now = 100 * H
    assert resolve_window(now) == resolve_window(now, since=None)  # default: last hour
    assert (resolve_window(now).start, resolve_window(now).stop) == (99 * H, now)
    w = resolve_window(now, last="2h", since="1970-01-01T00:00:00Z")
    assert (w.start, w.stop) == (98 * H, now), "last wins"
    w = resolve_window(now, pivot="1970-01-01T10:00:00Z")
    assert (w.start, w.stop) == (10 * H - 600_000_000_000, 10 * H + 600_000_000_000), (
        "delta defaults to 10 min"
    )
    w = resolve_window(now, since="1970-01-01T05:00:00Z")
    assert (w.start, w.stop) == (5 * H, now), "since without until runs to now"
    with pytest.raises(BadRequest):
        resolve_window(now, since="1970-01-02T00:00:00Z", until="1970-01-01T00:00:00Z")


def test_limit_and_skip_follow_whids() -> None:
    assert [parse_limit(v) for v in (None, "", "5", "abc", "-3", "999999")] == [
        1000,
        1000,
        5,
        1000,
        1000,
        10000,
    ]
    assert [parse_skip(v) for v in (None, "7", "x", "-1")] == [0, 7, 0, 0]
