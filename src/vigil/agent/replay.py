"""ReplaySource: events from a JSON-lines file, fed to the pipeline as if a sensor produced them.

A built-in source for tests, demonstrations and re-analysis of recorded telemetry. Each line is one
event in the WHIDS/Sysmon shape (``{"Event": {"System": ..., "EventData": ...}}``); a line that is not
a JSON object is skipped, counted as dropped and logged with its line number. It follows the event
source contract (``name``, ``requirements()``, ``start(sink)``, ``stop()``, ``stats()``) but emits
complete events, not raw kernel records, so the agent feeds it straight to the pipeline.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["ReplaySource"]

logger = logging.getLogger(__name__)


class ReplaySource:
    name = "replay"

    def __init__(self, path: str, *, rate: float = 0.0) -> None:
        self.path = path
        self.rate = rate  # events per second; 0 = as fast as the pipeline takes them
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._received = 0
        self._emitted = 0
        self._dropped = 0

    def requirements(self) -> list[str]:
        if not os.path.isfile(self.path):
            return [f"replay file {self.path} does not exist"]
        if not os.access(self.path, os.R_OK):
            return [f"replay file {self.path} is not readable"]
        return []

    def start(self, sink: Callable[[dict[str, Any]], None]) -> None:
        self._stop.clear()
        self._done.clear()
        self._thread = threading.Thread(target=self._run, args=(sink,), name="vigil-replay", daemon=True)
        self._thread.start()

    def _run(self, sink: Callable[[dict[str, Any]], None]) -> None:
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        try:
            with open(self.path, "rb") as f:
                for lineno, line in enumerate(f, 1):
                    if self._stop.is_set():
                        break
                    if not line.strip():
                        continue
                    self._received += 1
                    try:
                        event = orjson.loads(line)
                    except orjson.JSONDecodeError as e:
                        event, why = None, str(e)
                    else:
                        why = "not a JSON object"
                    if not isinstance(event, dict):
                        self._dropped += 1
                        logger.warning("replay %s:%d: skipped: %s", self.path, lineno, why)
                        continue
                    sink(event)
                    self._emitted += 1
                    if interval:
                        self._stop.wait(interval)
        except OSError as e:
            logger.error("replay %s: %s", self.path, e.strerror)
        finally:
            self._done.set()
            logger.info(
                "replay %s: done, %d events emitted, %d skipped", self.path, self._emitted, self._dropped
            )

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the whole file was replayed."""
        return self._done.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def stats(self) -> dict[str, int]:
        return {"received": self._received, "emitted": self._emitted, "dropped": self._dropped}

    def status(self) -> str | None:
        """None while running or after a complete replay, else why it stopped early."""
        return None
