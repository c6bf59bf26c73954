"""Kernel event sources: one module per mechanism, all registered in `registry`."""

from vigil.agent.sources.base import EventSource, RawRecord, Sink, SourceUnavailable
from vigil.agent.sources.registry import (
    DEFAULT_SOURCES,
    FALLBACKS,
    SOURCES,
    create_source,
    requirements_report,
    source_class,
)

__all__ = [
    "DEFAULT_SOURCES",
    "FALLBACKS",
    "SOURCES",
    "EventSource",
    "RawRecord",
    "Sink",
    "SourceUnavailable",
    "create_source",
    "requirements_report",
    "source_class",
]
