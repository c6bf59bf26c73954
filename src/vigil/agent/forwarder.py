"""Ships spooled events to the manager in gzip NDJSON batches.

The forwarder owns one thread. It takes the oldest events from the :class:`~vigil.agent.spool.Spool`
(bounded by count and bytes), posts them to ``POST /logs`` and acknowledges them only after the
manager answered 200. Transient failures back off exponentially with full jitter, so a fleet that
lost its manager does not hammer it in lockstep when it comes back. Nothing is dropped here: while
the manager is away events stay in the spool, whose own cap decides what is evicted.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass

from vigil.agent.link.client import EndpointClient, Fatal, Retryable
from vigil.agent.spool import Spool, SpoolError

logger = logging.getLogger(__name__)

__all__ = ["Forwarder", "ForwarderStats"]


@dataclass
class ForwarderStats:
    sent: int = 0
    batches: int = 0
    failures: int = 0
    last_error: str = ""
    last_success: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "batches": self.batches,
            "failures": self.failures,
            "last_error": self.last_error,
            "last_success": self.last_success,
        }


class Forwarder:
    """Moves events from the spool to the manager until stopped."""

    def __init__(
        self,
        spool: Spool,
        client: EndpointClient,
        *,
        batch_events: int = 500,
        batch_bytes: int = 4 * 1024 * 1024,
        linger: float = 0.2,
        idle_interval: float = 1.0,
        backoff_min: float = 0.5,
        backoff_max: float = 60.0,
    ) -> None:
        if batch_events <= 0 or batch_bytes <= 0:
            raise ValueError("forwarder batch bounds must be positive")
        self.spool = spool
        self.client = client
        self.batch_events = batch_events
        self.batch_bytes = batch_bytes
        self.linger = linger
        self.idle_interval = idle_interval
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.stats = ForwarderStats()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = 0.0
        self._attempt = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vigil-forwarder", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """New events are in the spool: send them soon rather than at the next idle tick."""
        self._wake.set()

    def stop(self, drain_deadline: float = 5.0) -> None:
        """Try to send what is spooled until ``drain_deadline`` seconds pass, then stop.

        Whatever is not sent stays in the spool for the next start: stopping never loses events.
        """
        deadline = time.monotonic() + drain_deadline
        while len(self.spool) and time.monotonic() < deadline and self._backoff == 0.0:
            self._wake.set()
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=max(1.0, self.client.timeout + 1.0))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.flush_once()
            except SpoolError as exc:
                logger.error("forwarder cannot read the spool: %s", exc)
                sent = 0
                self._stop.wait(self.backoff_max)
            if self._backoff:
                self._stop.wait(self._backoff)
            elif sent == 0:
                self._wake.wait(self.idle_interval)
                self._wake.clear()
                if self.linger:
                    self._stop.wait(self.linger)  # let a burst accumulate into one batch

    def flush_once(self) -> int:
        """Send one batch; returns how many events were delivered (0 on failure or nothing to send)."""
        batch = self.spool.peek(self.batch_events, self.batch_bytes)
        if not batch:
            return 0
        try:
            self.client.post_logs([e.body for e in batch])
        except (Retryable, Fatal) as exc:
            self._failed(exc)
            return 0
        self.spool.ack(batch)
        self._backoff = 0.0
        self._attempt = 0
        self.stats.sent += len(batch)
        self.stats.batches += 1
        self.stats.last_success = time.time()
        return len(batch)

    def _failed(self, exc: Exception) -> None:
        self.stats.failures += 1
        self.stats.last_error = str(exc)
        self._attempt += 1
        exponential = self.backoff_min * 2 ** min(self._attempt, 30)
        ceiling = self.backoff_max if isinstance(exc, Fatal) else min(self.backoff_max, exponential)
        # Full jitter: a random wait in [min, ceiling].
        self._backoff = random.uniform(self.backoff_min, ceiling)  # noqa: S311 - jitter, not crypto
        logger.warning(
            "forwarding %d spooled events failed (%s); retrying in %.1fs", len(self.spool), exc, self._backoff
        )
