"""Batches parsed in worker processes give exactly what in-process parsing gives."""

from __future__ import annotations

import os
import signal

import orjson

from vigil.manager.ingest import parse_ndjson
from vigil.manager.parsers import ParserPool
from vigil.manager.testing import make_event


def _body(n: int) -> bytes:
    lines = [orjson.dumps(make_event(i, signatures=("S",) if i % 7 == 0 else ())) for i in range(n)]
    lines.insert(3, b"{broken")
    return b"\n".join(lines)


def test_pool_matches_in_process_parsing() -> None:
    body = _body(500)
    assert len(body) > 16 * 1024, "large enough to go to the pool"
    pool = ParserPool(1)
    try:
        remote = pool.parse(body, 5)
    finally:
        pool.close()
    local = parse_ndjson(body, 5)
    assert remote.rows == local.rows and len(remote.rows) == 500
    assert (remote.malformed, remote.malformed_lines) == (1, local.malformed_lines)


def test_a_killed_worker_falls_back_to_in_process_parsing() -> None:
    body = _body(500)
    pool = ParserPool(1)
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
