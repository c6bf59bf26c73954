"""The single writer of a SQLite database: one thread owns the write connection.

Callers hand it a function ``fn(conn, after_commit)``; the thread runs queued functions in one
transaction (group commit), each inside its own savepoint so one failing function rolls back only
its own changes. ``after_commit`` collects callbacks that run only once the transaction is durable
(used to publish in-memory state such as report accumulators). :meth:`Writer.call` blocks until
the transaction holding the function has committed.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from vigil.manager.errors import Conflict, ManagerError, StoreError

__all__ = ["AfterCommit", "Writer"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
AfterCommit = list[Callable[[], None]]
_Job = tuple[Callable[[sqlite3.Connection, AfterCommit], Any], Future[Any]]

#: Most functions grouped in one transaction.
MAX_GROUP = 512


class Writer:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        idle: Callable[[sqlite3.Connection], None] | None = None,
        idle_interval: float = 1.0,
        on_abort: Callable[[], None] | None = None,
    ) -> None:
        self._connect = connect
        self._idle = idle
        self._idle_interval = idle_interval
        self._on_abort = on_abort
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="vigil-store-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise StoreError(f"cannot open database: {self._error}") from self._error

    def call(self, fn: Callable[[sqlite3.Connection, AfterCommit], T]) -> T:
        """Run ``fn`` in the writer thread; return its result once committed (or raise its error)."""
        if not self._thread.is_alive():
            raise StoreError("database writer is stopped")
        future: Future[T] = Future()
        self._queue.put((fn, future))
        return future.result()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # reported to the constructor
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        last_idle = time.monotonic()
        stopping = False
        try:
            while not stopping:
                try:
                    first = self._queue.get(timeout=self._idle_interval)
                except queue.Empty:
                    first = None
                    if self._idle is not None:
                        self._run_idle(conn)
                        last_idle = time.monotonic()
                    continue
                if first is None:
                    break
                jobs = [first]
                while len(jobs) < MAX_GROUP:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stopping = True
                        break
                    jobs.append(nxt)
                self._run_group(conn, jobs)
                if self._idle is not None and time.monotonic() - last_idle >= self._idle_interval:
                    self._run_idle(conn)
                    last_idle = time.monotonic()
            if self._idle is not None:
                self._run_idle(conn)
        finally:
            conn.close()

    def _run_idle(self, conn: sqlite3.Connection) -> None:
        assert self._idle is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._idle(conn)
            conn.execute("COMMIT")
        except sqlite3.Error:
            logger.exception("store housekeeping failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def _run_group(self, conn: sqlite3.Connection, jobs: list[_Job]) -> None:
        outcomes: list[tuple[Future[Any], Any, BaseException | None]] = []
        callbacks: AfterCommit = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            for _, future in jobs:
                future.set_exception(StoreError(f"database unavailable: {exc}"))
            return
        if self._on_abort is not None:
            self._on_abort()  # nothing pending may survive from an earlier group
        for fn, future in jobs:
            own: AfterCommit = []
            conn.execute("SAVEPOINT job")
            try:
                result = fn(conn, own)
            except ManagerError as exc:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((future, None, exc))
                continue
            except sqlite3.IntegrityError as exc:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")

                outcomes.append((future, None, Conflict(f"already exists: {exc}")))
                continue
            except Exception as exc:
                logger.exception("store write failed")
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((future, None, StoreError(f"write failed: {exc}")))
                continue
            conn.execute("RELEASE job")
            callbacks.extend(own)
            outcomes.append((future, result, None))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            logger.exception("commit failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if self._on_abort is not None:
                self._on_abort()
            for future, _, _ in outcomes:
                future.set_exception(StoreError(f"commit failed: {exc}"))
            return
        for callback in callbacks:
            callback()
        for future, result, error in outcomes:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
