"""Go number parsing and %v stringification (gene spec §2.2, §2.4, §5.2)."""

from __future__ import annotations

import math

import pytest

from vigil.events.fields import GoNumError, go_lower, go_parse_int, go_str, parse_event_id, parse_to_float


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("010", 8.0),
        ("0o10", 8.0),
        ("0b11", 3.0),
        ("0x1F", 31.0),
        ("0x_1F", 31.0),
        ("1_000", 1000.0),
        ("+5", 5.0),
        ("-0x10", -16.0),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("1_000.5", 1000.5),
        ("0x1p4", 16.0),
        ("0x1p-2", 0.25),
        ("08", 8.0),  # not octal: ParseInt fails, ParseFloat reads 8
        ("inf", math.inf),
        ("-Inf", -math.inf),
        ("Infinity", math.inf),
        ("9223372036854775808", 9.223372036854776e18),
    ],
)
def test_parse_to_float(text: str, want: float) -> None:
    assert parse_to_float(text) == want


@pytest.mark.parametrize(
    "text", [" 5", "5 ", "1e400", "\u0663", "abc", "", "0x", "1__0", "_1", "1_", "0x1.8", "+nan", "infin"]
)
def test_parse_to_float_errors(text: str) -> None:
    with pytest.raises(GoNumError):
        parse_to_float(text)


def test_nan_parses() -> None:
    assert math.isnan(parse_to_float("nan")) and math.isnan(parse_to_float("NaN"))


def test_parse_int_range() -> None:
    assert go_parse_int("9223372036854775807") == (1 << 63) - 1
    with pytest.raises(GoNumError) as info:
        go_parse_int("0x8000000000000000")
    assert info.value.range_error


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("1", 1),
        (1, 1),
        (1.0, 1),
        ("0x1", 1),
        ("01", 1),
        (None, 0),
        (" 1", 0),
        ("1.0", 0),
        ("4294967297", 2147483647),
        ("-4294967297", -2147483648),
        ("\u0663", 0),
        ("99999999999x", 2147483647),
    ],
)
def test_parse_event_id(value: object, want: int) -> None:
    assert parse_event_id(value if value is not None else "") == want


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (1, "1"),
        (42, "42"),
        (-0.0, "-0"),
        (100000, "100000"),
        (999999, "999999"),
        (1000000, "1e+06"),
        (1234567, "1.234567e+06"),
        (123456.7, "123456.7"),
        (123456789012, "1.23456789012e+11"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (18446744073709551615, "1.8446744073709552e+19"),
        (9007199254740993, "9.007199254740992e+15"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (True, "true"),
        (None, "<nil>"),
        ({"b": 1, "a": "x"}, "map[a:x b:1]"),
        (["a", "b", None], "[a b <nil>]"),
        ("s", "s"),
    ],
)
def test_go_str(value: object, want: str) -> None:
    assert go_str(value) == want


def test_go_lower_is_simple_mapping() -> None:
    assert go_lower("ABC") == "abc"
    assert go_lower("\u0130STANBUL") == "istanbul"  # Python's lower() gives "i\u0307stanbul"
    assert go_lower("ÉTÉ") == "été"
