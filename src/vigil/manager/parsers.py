"""Parsing of ``POST /logs`` bodies in worker processes.

JSON parsing holds the GIL; SQLite inserts do not. With ``ingest_workers > 0`` the parse of each
batch runs in a small process pool (forkserver start: the manager process has threads), so parsing
uses another core while the writer thread inserts. A broken pool (a worker killed) is reported once
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

from vigil.manager.ingest import ParsedBatch, parse_ndjson

__all__ = ["ParserPool"]

logger = logging.getLogger(__name__)


def _watch_parent(parent: int) -> None:
    """Worker initializer: exit as soon as the manager process is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class ParserPool:
    def __init__(self, workers: int) -> None:
        self._pool: ProcessPoolExecutor | None = None
        if workers > 0:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_watch_parent, initargs=(os.getpid(),)
            )

    def parse(self, body: bytes, receipt: int) -> ParsedBatch:
        pool = self._pool
        if pool is None or len(body) < 16 * 1024:  # small batches: a round trip costs more than parsing
            return parse_ndjson(body, receipt)
        try:
            return pool.submit(parse_ndjson, body, receipt).result()
        except BrokenProcessPool:
            logger.error("ingest parser pool broke; parsing in-process from now on")
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            return parse_ndjson(body, receipt)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
