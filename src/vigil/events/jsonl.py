"""JSON-lines event reader: one JSON object a line, bad lines reported and skipped.

gene stops reading a file at its first undecodable value; vigil reports the line (file:line and
the reason) and goes on with the next one (a documented improvement, docs/rules.md).
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

__all__ = ["LineError", "decode_line", "iter_stream", "read_jsonl"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LineError:
    """A line that is not a JSON object: where it is and why."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def _slow_decode(raw: bytes) -> Any:
    """Fallbacks for what Go accepts but orjson refuses: invalid UTF-8, integers beyond 64 bits."""
    text = raw.decode("utf-8", "replace")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _STREAM.decode(text)


def decode_line(raw: bytes) -> dict[str, Any]:
    """Decode one line into a JSON object; ValueError with a readable reason otherwise."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        try:
            obj = _slow_decode(raw)
        except (ValueError, RecursionError):
            raise ValueError(f"invalid JSON: {err}") from None
    if obj.__class__ is not dict:
        raise ValueError(f"not a JSON object (top-level {type(obj).__name__})")
    return obj


_WS = b" \t\n\r"
MAX_PENDING = 64 << 20  # a value spread over lines may not exceed this many bytes


def _bad_constant(name: str) -> Any:
    raise ValueError(f"invalid literal {name}")


def _go_float(text: str) -> float:
    """Go decodes every JSON number into a float64 and refuses the ones out of its range."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text} out of float64 range")
    return value


def _go_int(text: str) -> int | float:
    value = int(text)
    if abs(value) >= 1 << 63:
        return _go_float(text)  # orjson's behaviour too: big integers become floats
    return value


_STREAM = json.JSONDecoder(parse_constant=_bad_constant, parse_float=_go_float, parse_int=_go_int)


def _decode_pending(
    text: str, first_line: int, name: str
) -> tuple[list[dict[str, Any] | LineError], str, int]:
    """Decode the complete values of a multi-line chunk; returns them, the incomplete rest and its line."""
    out: list[dict[str, Any] | LineError] = []
    pos = 0
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t\n\r":
            pos += 1
        if pos >= n:
            return out, "", 0
        line = first_line + text.count("\n", 0, pos)
        try:
            obj, end = _STREAM.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            if err.pos >= len(text.rstrip()) and not err.msg.startswith("Unterminated string"):
                return out, text[pos:], line  # value continues on the next lines
            at = first_line + text.count("\n", 0, err.pos)
            out.append(
                LineError(name, line, f"invalid JSON: {err.msg}" + (f" (line {at})" if at != line else ""))
            )
            return out, "", 0
        except (ValueError, RecursionError) as err:
            out.append(LineError(name, line, f"invalid JSON: {err}"))
            return out, "", 0
        if obj.__class__ is dict:
            out.append(obj)
        else:
            out.append(LineError(name, line, f"not a JSON object (top-level {type(obj).__name__})"))
        pos = end


def iter_stream(stream: IO[bytes], name: str, first_line: int = 1) -> Iterator[dict[str, Any] | LineError]:
    """One object a line (fast path); values spread over several lines or several on one line also work.

    When a multi-line value turns out bad, the error is reported at its first line and reading resumes
    at the next line that starts with ``{`` after it, so one broken value never hides the rest.
    """
    loads = orjson.loads
    src: Iterator[tuple[int, bytes]] = enumerate(stream, first_line)
    pending: list[tuple[int, bytes]] = []
    resync = False
    while True:
        replay: list[tuple[int, bytes]] = []
        for lineno, raw in src:
            if not pending:
                if resync:
                    if raw[:1] != b"{":
                        continue  # still inside the broken multi-line value
                    resync = False
                try:
                    obj = loads(raw)
                    if obj.__class__ is dict:
                        yield obj
                        continue
                except orjson.JSONDecodeError:
                    if not raw.strip(_WS):
                        continue
                else:
                    yield LineError(name, lineno, f"not a JSON object (top-level {type(obj).__name__})")
                    continue
            pending.append((lineno, raw))
            text = b"".join(r for _, r in pending).decode("utf-8", "replace")
            values: list[dict[str, Any] | LineError]
            if len(text) > MAX_PENDING:
                values, rest = [LineError(name, pending[0][0], "JSON value too large or never closed")], "x"
            else:
                values, rest, _ = _decode_pending(text, pending[0][0], name)
            yield from values
            if values and isinstance(values[-1], LineError):
                replay = _resume(pending[1:])
                resync = len(pending) > 1 and not replay
                pending = []
                if replay:
                    break
            elif not rest:
                pending = []
            elif values:
                pending = _tail(pending, rest)
        else:
            break
        src = itertools.chain(replay, src)
    if pending:
        yield LineError(name, pending[0][0], "invalid JSON: unexpected end of data")
        again = _resume(pending[1:])
        if again:
            data = b"".join(raw if raw.endswith(b"\n") else raw + b"\n" for _, raw in again)
            yield from iter_stream(io.BytesIO(data), name, again[0][0])


def _resume(lines: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """The lines from the first one starting with ``{``: where reading resumes after a bad value."""
    for i, (_, raw) in enumerate(lines):
        if raw[:1] == b"{":
            return lines[i:]
    return []


def _tail(pending: list[tuple[int, bytes]], rest: str) -> list[tuple[int, bytes]]:
    """The pending lines holding the undecoded ``rest`` (it starts inside the last few lines)."""
    size = 0
    for i in range(len(pending) - 1, -1, -1):
        size += len(pending[i][1].decode("utf-8", "replace"))
        if size >= len(rest):
            head = pending[i][1].decode("utf-8", "replace")
            skip = size - len(rest)
            return [(pending[i][0], head[skip:].encode()), *pending[i + 1 :]]
    return pending


def read_jsonl(source: str | Path) -> Iterator[dict[str, Any] | LineError]:
    """Yield each event of a JSON-lines file (``-`` = stdin) or a LineError for a bad line."""
    if str(source) == "-":
        yield from iter_stream(sys.stdin.buffer, "<stdin>")
        return
    with open(source, "rb", buffering=1 << 20) as stream:
        yield from iter_stream(stream, str(source))
