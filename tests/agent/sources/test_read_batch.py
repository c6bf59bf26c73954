"""EventSource._read_batch: what a kernel overrun (ENOBUFS) and a stop mean for a batch read."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from vigil.agent.sources.base import EventSource


class _Source(EventSource):
    name = "test"

    def requirements(self) -> list[str]:
        return []

    def _open(self) -> None:  # never started: only _read_batch is exercised
        raise AssertionError("not started in these tests")

    def _run(self) -> None:
        raise AssertionError("not started in these tests")


class _Reader:
    def __init__(self, result: list[bytes] | OSError) -> None:
        self.result = result

    def read(self) -> list[bytes]:
        if isinstance(self.result, OSError):
            raise self.result
        return self.result


def _source() -> tuple[_Source, list[dict[str, Any]]]:
    source = _Source()
    records: list[dict[str, Any]] = []
    source._sink = records.append
    return source, records


def test_a_batch_is_returned_as_read() -> None:
    source, records = _source()
    assert source._read_batch(_Reader([b"a", b"b"])) == [b"a", b"b"]  # type: ignore[arg-type]
    assert records == []


def test_an_overrun_is_counted_and_reported_as_lost() -> None:
    source, records = _source()
    assert source._read_batch(_Reader(OSError(errno.ENOBUFS, "overrun"))) == []  # type: ignore[arg-type]
    assert records == [{"type": "lost", "count": 1, "source": "test"}]
    assert source.stats()["dropped"] == 1


def test_an_error_while_stopping_ends_the_read_quietly() -> None:
    source, records = _source()
    source._stop.set()
    assert source._read_batch(_Reader(OSError(errno.EBADF, "closed"))) == []  # type: ignore[arg-type]
    assert records == []


def test_any_other_error_is_raised() -> None:
    source, _ = _source()
    with pytest.raises(OSError, match="closed"):
        source._read_batch(_Reader(OSError(errno.EBADF, "closed")))  # type: ignore[arg-type]
