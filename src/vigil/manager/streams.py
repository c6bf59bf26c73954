"""Websocket fan-out of ingested events (``/stream/events``) and detections (``/stream/detections``).

Ingest runs in worker threads; each subscriber owns a bounded asyncio queue on the server's loop.
A subscriber that falls more than ``maxsize`` events behind is disconnected (and logged) rather than
letting memory grow without bound as WHIDS does.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["StreamHub", "Subscriber"]

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Subscriber:
    detections_only: bool
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(maxsize=10_000))
    overflowed: bool = False

    def offer(self, payload: bytes | None) -> None:
        """Runs on the loop thread."""
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.overflowed = True
            logger.warning("stream subscriber too slow, disconnecting")
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class StreamHub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []

    @property
    def active(self) -> bool:
        return bool(self._subscribers)

    def subscribe(self, detections_only: bool) -> Subscriber:
        sub = Subscriber(detections_only, asyncio.get_running_loop())
        with self._lock:
            self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def publish(self, events: Sequence[tuple[bytes, bool]]) -> None:
        """Hand ``(json, is_detection)`` events to every subscriber; callable from any thread."""
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            for payload, is_detection in events:
                if sub.detections_only and not is_detection:
                    continue
                try:
                    sub.loop.call_soon_threadsafe(sub.offer, payload)
                except RuntimeError:  # loop closed
                    self.unsubscribe(sub)
                    break

    def close(self) -> None:
        with self._lock:
            subscribers, self._subscribers = self._subscribers, []
        for sub in subscribers:
            try:
                sub.loop.call_soon_threadsafe(sub.offer, None)
            except RuntimeError:
                pass
