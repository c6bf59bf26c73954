"""Where reported events go: the ``Output`` protocol and the standalone JSON-lines output.

The pipeline hands every reported event to each output: ``write(event, alert=...)`` per event,
``flush()`` after each batch and on idle ticks, ``close()`` at shutdown. The forwarder towards the
manager implements the same protocol. Standalone mode writes alerts to ``alerts.jsonl`` and every
reported event (alerts, filter matches, everything under ``log_all``) to ``events.jsonl`` in the
output directory, rotated by size and age as WHIDS' ``alerts.log``; rotated files are
``<stream>-<UTC time>.jsonl[.gz]``, and only the newest ``keep`` are kept.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import threading
import time
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import orjson

__all__ = ["JsonlOutput", "Output", "RotatingFile"]

logger = logging.getLogger(__name__)


@runtime_checkable
class Output(Protocol):
    """A destination of reported events; called from the pipeline thread only."""

    name: str

    def write(self, event: dict[str, Any], *, alert: bool) -> None:
        """Take one event (``alert``: it carries a Detection at or above the threshold)."""

    def flush(self) -> None:
        """Make what was written so far durable or sent (end of a batch, idle tick)."""

    def close(self) -> None:
        """Flush and release resources; no write follows."""

    def stats(self) -> dict[str, Any]:
        """Counters this output keeps (written, errors, rotations, ...)."""


class RotatingFile:
    """An append-only file rotated by size and age; rotated files gzipped off the hot path."""

    def __init__(
        self,
        directory: str,
        stem: str,
        *,
        max_bytes: int,
        max_age: float,
        keep: int,
        compress: bool,
        clock: Any = time.time,
    ) -> None:
        self.directory = directory
        self.stem = stem
        self.path = os.path.join(directory, f"{stem}.jsonl")
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.keep = keep
        self.compress = compress
        self._clock = clock
        self._fh: Any = None
        self._size = 0
        self._opened = 0.0
        self._compressors: list[threading.Thread] = []
        self.rotations = 0

    def _open(self) -> None:
        os.makedirs(self.directory, mode=0o750, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._fh = os.fdopen(fd, "ab", buffering=1 << 16)
        self._size = os.fstat(fd).st_size
        # Age counts from the file's creation as far as we can tell (its mtime if it already existed
        # and was not empty), so a restarting agent still rotates on time.
        self._opened = os.fstat(fd).st_mtime if self._size else self._clock()

    def write(self, data: bytes) -> None:
        if self._fh is None:
            self._open()
        elif self._due():
            self.rotate()
            self._open()
        self._fh.write(data)
        self._size += len(data)

    def _due(self) -> bool:
        return self._size > 0 and (
            self._size >= self.max_bytes or self._clock() - self._opened >= self.max_age
        )

    def flush(self) -> None:
        if self._fh is None:
            return
        self._fh.flush()
        if self._due():
            self.rotate()

    def rotate(self) -> None:
        """Close the current file and rename it with its rotation time; gzip it in the background."""
        if self._fh is None:
            return
        self._fh.close()
        self._fh = None
        stamp = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        rotated = os.path.join(self.directory, f"{self.stem}-{stamp}.jsonl")
        os.replace(self.path, rotated)
        self.rotations += 1
        if self.compress:
            t = threading.Thread(target=self._gzip, args=(rotated,), name="vigil-output-gzip", daemon=True)
            self._compressors.append(t)
            t.start()
        self._prune()

    def _gzip(self, path: str) -> None:
        part = path + ".gz.part"
        try:
            with open(path, "rb") as src, gzip.open(part, "wb", compresslevel=1) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(part, path + ".gz")
            os.unlink(path)
        except OSError as e:
            logger.error("output: cannot compress %s: %s", path, e)
        self._prune()

    def rotated_files(self) -> list[str]:
        """Rotated files of this stream, oldest first (the time stamp sorts lexically)."""
        prefix = f"{self.stem}-"
        names = [
            n
            for n in os.listdir(self.directory)
            if n.startswith(prefix) and (n.endswith(".jsonl") or n.endswith(".jsonl.gz"))
        ]
        return sorted(os.path.join(self.directory, n) for n in names)

    def _prune(self) -> None:
        files = self.rotated_files()
        for path in files[: max(0, len(files) - self.keep)]:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                logger.error("output: cannot delete old file %s: %s", path, e)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        for t in self._compressors:
            t.join(timeout=30)
        self._compressors.clear()


class JsonlOutput:
    """Standalone output: ``alerts.jsonl`` and ``events.jsonl`` under ``directory``."""

    name = "jsonl"

    def __init__(
        self,
        directory: str,
        *,
        rotate_mb: int = 100,
        rotate_interval: float = 5 * 3600.0,
        keep: int = 10,
        compress: bool = True,
        clock: Any = time.time,
    ) -> None:
        def stream(stem: str) -> RotatingFile:
            return RotatingFile(
                directory,
                stem,
                max_bytes=rotate_mb << 20,
                max_age=rotate_interval,
                keep=keep,
                compress=compress,
                clock=clock,
            )

        self.directory = directory
        self.alerts = stream("alerts")
        self.events = stream("events")
        self._written = 0
        self._alerts = 0
        self._errors = 0

    def write(self, event: dict[str, Any], *, alert: bool) -> None:
        try:
            line = orjson.dumps(event) + b"\n"
            if alert:
                self.alerts.write(line)
                self._alerts += 1
            self.events.write(line)
            self._written += 1
        except (OSError, TypeError) as e:
            self._errors += 1
            if self._errors in (1, 10, 100) or self._errors % 1000 == 0:
                logger.error(
                    "output %s: cannot write an event (%d errors so far): %s", self.name, self._errors, e
                )

    def flush(self) -> None:
        for f in (self.alerts, self.events):
            try:
                f.flush()
            except OSError as e:
                self._errors += 1
                logger.error("output %s: cannot flush %s: %s", self.name, f.path, e)

    def close(self) -> None:
        self.flush()
        self.alerts.close()
        self.events.close()

    def stats(self) -> dict[str, int]:
        return {
            "written": self._written,
            "alerts": self._alerts,
            "errors": self._errors,
            "rotations": self.alerts.rotations + self.events.rotations,
        }
