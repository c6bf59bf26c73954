"""Parsing of ``POST /logs`` bodies in worker processes.

JSON parsing holds the GIL; SQLite inserts do not. With ``ingest_workers > 0`` the parse of each
batch runs in a small process pool, so parsing uses another core while the writer thread inserts.
A gzip batch goes to the worker as received and is inflated there (bounded by ``max_body_bytes``):
the event loop does not inflate it and ~25x fewer bytes cross the pipe. A broken pool (a worker killed) is reported once
and parsing continues in-process; nothing is lost since the request has not been answered yet.

Workers are spawned (the manager has threads, so no fork) and watch their parent: if the manager
dies, even by SIGKILL, they exit within a second instead of lingering.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from vigil.manager.gunzip import gunzip_bounded
from vigil.manager.ingest import ParsedBatch, parse_ndjson

__all__ = ["ParserPool", "parse_body"]

logger = logging.getLogger(__name__)


def _watch_parent(parent: int) -> None:
    """Worker initializer: exit as soon as the manager process is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


#: Bodies smaller than this are parsed in-process: a round trip to a worker costs more.
_INLINE_BYTES = 16 * 1024
_INLINE_GZIP_BYTES = 1024


def parse_body(body: bytes, receipt: int, gzipped: bool, limit: int) -> ParsedBatch:
    """Inflate (bounded by ``limit``) when ``gzipped``, then parse; runs in a worker."""
    return parse_ndjson(gunzip_bounded(body, limit) if gzipped else body, receipt)


class ParserPool:
    def __init__(self, workers: int, max_body_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes
        self._pool: ProcessPoolExecutor | None = None
        if workers > 0:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_watch_parent, initargs=(os.getpid(),)
            )

    def parse(self, body: bytes, receipt: int, *, gzipped: bool = False) -> ParsedBatch:
        """The parsed batch; TooLarge or BadRequest when a gzip ``body`` is a bomb or not gzip."""
        pool = self._pool
        limit = self.max_body_bytes
        if pool is None or len(body) < (_INLINE_GZIP_BYTES if gzipped else _INLINE_BYTES):
            return parse_body(body, receipt, gzipped, limit)
        try:
            return pool.submit(parse_body, body, receipt, gzipped, limit).result()
        except BrokenProcessPool:
            logger.error("ingest parser pool broke; parsing in-process from now on")
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            return parse_body(body, receipt, gzipped, limit)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
