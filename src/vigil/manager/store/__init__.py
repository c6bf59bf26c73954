"""Manager storage: the :class:`Store` interface and its SQLite implementation."""

from vigil.manager.store.base import EventBatch, EventRow, IngestResult, SearchQuery, Store
from vigil.manager.store.sqlite import SQLiteStore

__all__ = ["EventBatch", "EventRow", "IngestResult", "SQLiteStore", "SearchQuery", "Store"]
