"""Batches parsed in worker processes give exactly what in-process parsing gives."""

from __future__ import annotations

import gzip
import os
import signal

import orjson
import pytest

from vigil.manager.errors import BadRequest, TooLarge
from vigil.manager.ingest import parse_ndjson
from vigil.manager.parsers import ParserPool
from vigil.manager.testing import make_event

LIMIT = 4 * 1024 * 1024


def _body(n: int) -> bytes:
    lines = [orjson.dumps(make_event(i, signatures=("S",) if i % 7 == 0 else ())) for i in range(n)]
    lines.insert(3, b"{broken")
    return b"\n".join(lines)


def test_pool_matches_in_process_parsing() -> None:
    body = _body(500)
    assert len(body) > 16 * 1024, "large enough to go to the pool"
    pool = ParserPool(1, LIMIT)
    try:
        remote = pool.parse(body, 5)
    finally:
        pool.close()
    local = parse_ndjson(body, 5)
    assert remote.rows == local.rows and len(remote.rows) == 500
    assert (remote.malformed, remote.malformed_lines) == (1, local.malformed_lines)


def test_a_killed_worker_falls_back_to_in_process_parsing() -> None:
    body = _body(500)
    pool = ParserPool(1, LIMIT)
    try:
        assert len(pool.parse(body, 0).rows) == 500
        assert pool._pool is not None
        for pid in list(pool._pool._processes):  # the worker this test's pool started
            os.kill(pid, signal.SIGKILL)
        assert len(pool.parse(body, 0).rows) == 500
        assert pool._pool is None
        assert len(pool.parse(body, 0).rows) == 500
    finally:
        pool.close()


def test_gzip_bodies_are_inflated_in_the_worker_within_the_limit() -> None:
    body = _body(2000)
    packed = gzip.compress(body)
    assert len(packed) > 1024, "large enough to go to the pool"
    bomb = gzip.compress(b"\n" * (LIMIT + 1))  # inflates past the limit
    pool = ParserPool(1, LIMIT)
    try:
        remote = pool.parse(packed, 5, gzipped=True)
        assert pool._pool is not None, "parsed by the worker"
        with pytest.raises(TooLarge, match="once decompressed"):
            pool.parse(bomb, 5, gzipped=True)
        with pytest.raises(BadRequest, match="invalid gzip body"):
            pool.parse(b"\x1f\x8b" + os.urandom(4096), 5, gzipped=True)
        assert pool._pool is not None, "an error in a batch does not break the pool"
        assert len(pool.parse(packed, 5, gzipped=True).rows) == 2000
    finally:
        pool.close()
    local = parse_ndjson(body, 5)
    assert remote.rows == local.rows and len(remote.rows) == 2000
    assert (remote.malformed, remote.malformed_lines) == (1, local.malformed_lines)
