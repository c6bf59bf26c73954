"""Per-stage counters: received, emitted, dropped and latency, as the agent reports them.

Each stage of the agent (intake, detection, actions, every output; later spool and forwarder) owns
one :class:`StageCounters`. Counts are cumulative; latency is summarised per reporting window (count,
mean, max, p99 over a bounded sample) and reset when the window is read, so a periodic log line shows
how the last window went. Writers are single threads; a reader may see a count one event stale.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StageCounters", "StatsBoard"]

_SAMPLE = 1024


@dataclass
class StageCounters:
    name: str
    received: int = 0
    emitted: int = 0
    dropped: int = 0
    _n: int = 0
    _sum: float = 0.0
    _max: float = 0.0
    _sample: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, seconds: float) -> None:
        """Record the latency of one item through this stage."""
        with self._lock:
            self._n += 1
            self._sum += seconds
            self._max = max(self._max, seconds)
            if len(self._sample) < _SAMPLE:
                self._sample.append(seconds)
            else:  # reservoir sampling keeps the p99 honest over long windows
                j = random.randrange(self._n)  # noqa: S311 - not security related
                if j < _SAMPLE:
                    self._sample[j] = seconds

    def snapshot(self, *, reset: bool = True) -> dict[str, Any]:
        """Counts and the latency summary (ms) of the window since the last reset."""
        with self._lock:
            sample = sorted(self._sample)
            latency = {
                "count": self._n,
                "mean_ms": round(self._sum / self._n * 1000, 3) if self._n else 0.0,
                "p99_ms": round(sample[min(len(sample) - 1, int(len(sample) * 0.99))] * 1000, 3)
                if sample
                else 0.0,
                "max_ms": round(self._max * 1000, 3),
            }
            if reset:
                self._n, self._sum, self._max = 0, 0.0, 0.0
                self._sample = []
        return {
            "received": self.received,
            "emitted": self.emitted,
            "dropped": self.dropped,
            "latency": latency,
        }


class StatsBoard:
    """The stages of one agent, in pipeline order."""

    def __init__(self) -> None:
        self._stages: dict[str, StageCounters] = {}

    def stage(self, name: str) -> StageCounters:
        if name not in self._stages:
            self._stages[name] = StageCounters(name)
        return self._stages[name]

    def snapshot(self, *, reset: bool = True) -> dict[str, dict[str, Any]]:
        return {name: s.snapshot(reset=reset) for name, s in list(self._stages.items())}
