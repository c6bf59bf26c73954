"""JSON-lines reader: bad lines reported with file:line and skipped; streams of values accepted."""

from __future__ import annotations

from pathlib import Path

from vigil.events.jsonl import LineError, read_jsonl


def _read(tmp_path: Path, data: bytes) -> list[object]:
    f = tmp_path / "ev.jsonl"
    f.write_bytes(data)
    return list(read_jsonl(f))


def test_good_and_bad_lines(tmp_path: Path) -> None:
    data = b'{"a":1}\n\n{"b":1,,}\n[1,2]\n"str"\n{"c":NaN}\n  \n{"d":4}\n'
    items = _read(tmp_path, data)
    errors = [i for i in items if isinstance(i, LineError)]
    events = [i for i in items if isinstance(i, dict)]
    assert events == [{"a": 1}, {"d": 4}]
    assert [(e.line, e.file.endswith("ev.jsonl")) for e in errors] == [
        (3, True),
        (4, True),
        (5, True),
        (6, True),
    ]
    assert "not a JSON object" in errors[1].message
    assert str(errors[0]).startswith(str(tmp_path / "ev.jsonl") + ":3: ")


def test_pretty_printed_and_concatenated_values(tmp_path: Path) -> None:
    data = b'{\n  "a": {\n    "b": 1\n  }\n}\n{"c":2}{"d":3}\n{"e":\n4}\n'
    assert _read(tmp_path, data) == [{"a": {"b": 1}}, {"c": 2}, {"d": 3}, {"e": 4}]


def test_truncated_value_at_end_of_file(tmp_path: Path) -> None:
    items = _read(tmp_path, b'{"a":1}\n{"b":\n')
    assert items[0] == {"a": 1}
    assert isinstance(items[1], LineError) and items[1].line == 2


def test_invalid_utf8_and_big_integers_are_accepted(tmp_path: Path) -> None:
    items = _read(tmp_path, b'{"s":"a\xffb"}\n{"n":123456789012345678901234567890}\n')
    assert items[0] == {"s": "a\ufffdb"}
    assert items[1] == {"n": 1.2345678901234568e29}  # a float64, as in Go


def test_error_after_a_multi_line_value_resynchronises(tmp_path: Path) -> None:
    items = _read(tmp_path, b'{"a":\n1,,}\n{"ok":1}\n')
    assert isinstance(items[0], LineError) and items[0].line == 1 and "(line 2)" in items[0].message
    assert items[1] == {"ok": 1}


def test_unclosed_value_does_not_hide_the_following_lines(tmp_path: Path) -> None:
    items = _read(tmp_path, b'{"a":1}\n{"open": \n{"b":2}\n{"c":3}\n')
    assert items[0] == {"a": 1}
    assert isinstance(items[1], LineError) and items[1].line == 2
    assert items[2:] == [{"b": 2}, {"c": 3}]


def test_bad_pretty_printed_value_resumes_at_next_object(tmp_path: Path) -> None:
    data = b'{\n  "a": 1,\n  "b": ,\n}\n{\n  "ok": true\n}\n'
    items = _read(tmp_path, data)
    assert isinstance(items[0], LineError) and items[0].line == 1 and "(line 3)" in items[0].message
    assert items[1:] == [{"ok": True}]


def test_numbers_out_of_float64_range_are_errors_like_in_go(tmp_path: Path) -> None:
    items = _read(tmp_path, b'{"a":1e400}\n{"a":-1e309}\n{"a":1e308,"b":-0.0}\n{"a":NaN}\n')
    assert [type(i).__name__ for i in items] == ["LineError", "LineError", "dict", "LineError"]
    assert "out of float64 range" in items[0].message  # type: ignore[union-attr]
    assert items[2] == {"a": 1e308, "b": -0.0}
