"""Enrichment hooks: functions that add fields to an event, each filtered by (channel, EventIDs).

As in WHIDS, hooks run in registration order on every event the sensor builds, after the Sysmon
fields are filled and before the event leaves the sensor. A hook gets the event's EventData (to
change in place) and a context with the tracker and the event's process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigil.agent.tracker import ProcessInfo, ProcessTracker

logger = logging.getLogger(__name__)


@dataclass
class HookContext:
    tracker: ProcessTracker
    process: ProcessInfo | None
    record: dict[str, Any]
    ts_ns: int


HookFn = Callable[[dict[str, str], HookContext], None]


@dataclass(frozen=True)
class Hook:
    name: str
    fn: HookFn
    channel: str
    event_ids: frozenset[int] | None = None  # None: every EventID of the channel

    def applies(self, channel: str, event_id: int) -> bool:
        return channel == self.channel and (self.event_ids is None or event_id in self.event_ids)


@dataclass
class HookRegistry:
    """Ordered hooks with a per-(channel, EventID) cache of which ones apply."""

    hooks: list[Hook] = field(default_factory=list)
    _cache: dict[tuple[str, int], list[Hook]] = field(default_factory=dict)
    errors: int = 0

    def register(
        self, name: str, channel: str, event_ids: Iterable[int] | None = None
    ) -> Callable[[HookFn], HookFn]:
        def deco(fn: HookFn) -> HookFn:
            self.add(Hook(name, fn, channel, frozenset(event_ids) if event_ids is not None else None))
            return fn

        return deco

    def add(self, hook: Hook) -> None:
        if any(h.name == hook.name for h in self.hooks):
            raise ValueError(f"enrichment hook {hook.name!r} is already registered")
        self.hooks.append(hook)
        self._cache.clear()

    def names(self) -> list[str]:
        return [h.name for h in self.hooks]

    def run(self, event: dict[str, Any], ctx: HookContext) -> None:
        system = event["Event"]["System"]
        key = (system["Channel"], system["EventID"])
        hooks = self._cache.get(key)
        if hooks is None:
            hooks = self._cache[key] = [h for h in self.hooks if h.applies(*key)]
        data = event["Event"]["EventData"]
        for hook in hooks:
            try:
                hook.fn(data, ctx)
            except Exception:
                self.errors += 1
                logger.exception("enrichment hook %s failed on %s/%s", hook.name, *key)
