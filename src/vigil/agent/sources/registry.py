"""Every built-in event source, by name, in one place."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigil.agent.sources.base import EventSource
    from vigil.agent.tracker import ProcessTracker

# name -> "module:Class"
SOURCES: dict[str, str] = {
    "proc_connector": "vigil.agent.sources.proc_connector:ProcConnectorSource",
    "audit": "vigil.agent.sources.audit:AuditSource",
    "fanotify_exec": "vigil.agent.sources.fanotify_exec:FanotifyExecSource",
    "netinv": "vigil.agent.sources.netinv:NetInventorySource",
    "dns": "vigil.agent.sources.dns:DnsSource",
    "files": "vigil.agent.sources.files:FileSource",
    "procpoll": "vigil.agent.sources.procpoll:ProcPollSource",
}
DEFAULT_SOURCES = ["proc_connector", "audit", "fanotify_exec", "netinv", "dns"]
# When the key cannot start, the value is started instead.
FALLBACKS = {"proc_connector": "procpoll"}


def source_class(name: str) -> type[EventSource]:
    try:
        target = SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown event source {name!r}; known: {', '.join(sorted(SOURCES))}") from None
    module, cls = target.split(":")
    found: type[EventSource] = getattr(importlib.import_module(module), cls)
    return found


def create_source(
    name: str, options: Mapping[str, Any], tracker: ProcessTracker | None = None
) -> EventSource:
    """An instance of source `name` built with `options` (its constructor's keyword arguments)."""
    cls = source_class(name)
    kwargs = dict(options)
    if getattr(cls, "wants_hash_cache", False) and tracker is not None:
        kwargs.setdefault("hash_cache", tracker.hash_cache)
    return cls(**kwargs)


def requirements_report(
    names: list[str] | None = None, options: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, list[str]]:
    """Source name -> unmet needs ([] = available), without starting anything (`agent doctor`)."""
    report: dict[str, list[str]] = {}
    for name in names if names is not None else list(SOURCES):
        try:
            report[name] = create_source(name, (options or {}).get(name, {})).requirements()
        except (ValueError, TypeError, ImportError) as e:
            report[name] = [f"cannot be configured: {e}"]
    return report
