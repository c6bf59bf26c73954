"""vigil.events: event readers. The EVTX reader is imported on first use (a JSON-lines scan does
not need it, and importing it costs every `vigil scan` start-up several milliseconds)."""

from __future__ import annotations

from typing import Any

__all__ = ["EvtxError", "iter_evtx", "read_evtx"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from vigil.events import evtx

        return getattr(evtx, name)
    raise AttributeError(f"module 'vigil.events' has no attribute {name!r}")
