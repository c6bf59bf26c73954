"""A durable on-disk queue between the agent's pipeline and its forwarder.

Events handed to :meth:`Spool.put` are committed to a SQLite database in WAL mode with
``synchronous=FULL`` before the call returns, so they survive an agent crash, ``kill -9`` and a
reboot. The forwarder reads the oldest batch with :meth:`Spool.peek` and removes it with
:meth:`Spool.ack` only after the manager confirmed it; a crash between the two re-sends the batch,
and the per-event hash lets the manager store it once (at-least-once delivery, exactly-once storage).

A size cap bounds the disk the spool may take while the manager is unreachable: when it is exceeded
the oldest events are evicted, and the number evicted is kept in the database so it can be reported.

One connection serves both the pipeline thread and the forwarder thread; a lock serialises them,
which keeps a single writer per file as SQLite wants.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger(__name__)

__all__ = ["Spool", "SpoolError", "SpooledEvent", "event_hash", "serialize_event"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hash TEXT NOT NULL,
    body BLOB NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class SpoolError(Exception):
    """The spool database cannot be opened or written (disk full, corrupt file, permissions)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"spool {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SpooledEvent:
    id: int
    hash: str
    body: bytes


def serialize_event(event: Mapping[str, Any]) -> bytes:
    """The bytes an event is spooled and sent as: compact JSON with sorted keys (canonical form).

    The manager stores such a line as received and hashes its bytes, so sorting here is what makes
    that hash the canonical one the actions name artifact directories with.
    """
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def event_hash(body: bytes) -> str:
    """The identity of a serialized event, as WHIDS defines it: SHA-1 hex of the event's JSON bytes.

    The manager computes the same digest over each NDJSON line it receives (one without
    ``EdrData``, as :func:`serialize_event` writes them), so a batch re-sent after a crash is
    recognised, and artifact paths (``<guid>/<event-hash>/``) link to their event.
    SHA-1 here is an identifier, not a security boundary.
    """
    return hashlib.sha1(body, usedforsecurity=False).hexdigest()


class Spool:
    """Durable FIFO of serialized events with a byte cap and counted oldest-first eviction."""

    def __init__(self, path: Path, *, max_bytes: int = 512 * 1024 * 1024) -> None:
        if max_bytes <= 0:
            raise ValueError(f"spool max_bytes must be positive, got {max_bytes}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT COALESCE(SUM(size), 0), COUNT(*) FROM queue").fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise SpoolError(self.path, str(exc)) from exc
        self._bytes = int(row[0])
        self._count = int(row[1])

    # -- producer side ---------------------------------------------------------------------------

    def put(self, bodies: Iterable[bytes]) -> int:
        """Append serialized events durably; returns how many were stored."""
        rows = [(event_hash(b), b, len(b)) for b in bodies]
        if not rows:
            return 0
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT INTO queue (hash, body, size) VALUES (?, ?, ?)", rows)
                self._bytes += sum(r[2] for r in rows)
                self._count += len(rows)
                if self._bytes > self.max_bytes:
                    self._evict_locked()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback_locked()
                raise SpoolError(self.path, str(exc)) from exc
        return len(rows)

    def _evict_locked(self) -> None:
        evicted = 0
        freed = 0
        target = self._bytes - int(self.max_bytes * 0.9)  # free 10 % headroom, not one event per put
        last_id = 0
        cursor = self._db.execute("SELECT id, size FROM queue ORDER BY id")
        for row_id, size in cursor:
            if freed >= target:
                break
            last_id = row_id
            freed += size
            evicted += 1
        cursor.close()
        if evicted == 0:
            return
        self._db.execute("DELETE FROM queue WHERE id <= ?", (last_id,))
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES ('evicted', ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (evicted,),
        )
        self._bytes -= freed
        self._count -= evicted
        logger.warning("spool over its cap of %d bytes: evicted %d oldest events", self.max_bytes, evicted)

    # -- consumer side ---------------------------------------------------------------------------

    def peek(self, max_events: int, max_bytes: int | None = None) -> list[SpooledEvent]:
        """The oldest events, at most ``max_events`` and (after the first) at most ``max_bytes``."""
        with self._lock:
            try:
                cursor = self._db.execute(
                    "SELECT id, hash, body FROM queue ORDER BY id LIMIT ?", (max_events,)
                )
                batch: list[SpooledEvent] = []
                total = 0
                for row_id, digest, body in cursor:
                    if max_bytes is not None and batch and total + len(body) > max_bytes:
                        break
                    batch.append(SpooledEvent(row_id, digest, bytes(body)))
                    total += len(body)
            except sqlite3.Error as exc:
                raise SpoolError(self.path, str(exc)) from exc
        return batch

    def ack(self, events: Sequence[SpooledEvent]) -> None:
        """Remove events the manager has confirmed."""
        if not events:
            return
        ids = [(e.id,) for e in events]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                before = self._db.total_changes
                self._db.executemany("DELETE FROM queue WHERE id = ?", ids)
                removed = self._db.total_changes - before
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback_locked()
                raise SpoolError(self.path, str(exc)) from exc
            # Evicted rows may be among the acked ones; recount sizes from the database then.
            if removed != len(ids):
                row = self._db.execute("SELECT COALESCE(SUM(size), 0), COUNT(*) FROM queue").fetchone()
                self._bytes, self._count = int(row[0]), int(row[1])
            else:
                self._bytes -= sum(len(e.body) for e in events)
                self._count -= removed

    # -- introspection ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def evicted(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'evicted'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rollback_locked(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
