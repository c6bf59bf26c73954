"""The storage interface of the manager.

The APIs talk only to :class:`Store`. Rows are plain dicts whose keys are the column names below;
the API layer turns them into WHIDS JSON. Implementations: :mod:`vigil.manager.store.sqlite`
(PostgreSQL later). SQL is kept portable (``ON CONFLICT``, ``RETURNING``, no SQLite-only syntax in
queries) so the second implementation reuses the statements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from vigil.manager.scoring import ReportState, RuleInfo

__all__ = ["EventBatch", "EventRow", "IngestResult", "SearchQuery", "Store"]

Row = dict[str, Any]


class EventRow(NamedTuple):
    """One event ready to store. ``body`` is the compact JSON of the event without ``EdrData``.

    ``ts`` is the event's own time when ``timed``, else its receipt time. Two rows are the same event
    when they have the same hash and the same own time (untimed: the same hash); a re-sent event has
    both. A NamedTuple rather than a frozen dataclass: ingest builds one per event and this is cheaper.
    """

    hash: str
    ts: int
    channel: str
    event_id: int
    criticality: int
    signatures: tuple[str, ...]
    body: bytes
    timed: bool = True


@dataclass(slots=True)
class EventBatch:
    """Events ready to store, column by column: what ingest builds, ships from a parser process and
    binds in bulk. Columns pickle and ``zip`` far cheaper than one object per event (a NamedTuple
    costs ~2 µs to pickle and ~1.4 µs to unpickle, a column entry a tenth of that).

    ``event_times`` holds each event's own time, 0 when it has none (then ``ts`` is its receipt)."""

    hashes: list[str] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    event_times: list[int] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    event_ids: list[int] = field(default_factory=list)
    criticalities: list[int] = field(default_factory=list)
    signatures: list[tuple[str, ...]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def append(self, row: EventRow) -> None:
        self.hashes.append(row.hash)
        self.ts.append(row.ts)
        self.event_times.append(row.ts if row.timed else 0)
        self.channels.append(row.channel)
        self.event_ids.append(row.event_id)
        self.criticalities.append(row.criticality)
        self.signatures.append(row.signatures)
        self.bodies.append(row.body)

    @classmethod
    def of(cls, rows: Iterable[EventRow]) -> EventBatch:
        batch = cls()
        for row in rows:
            batch.append(row)
        return batch

    def __len__(self) -> int:
        return len(self.hashes)

    def rows(self) -> list[EventRow]:
        return [
            EventRow(h, ts, ch, eid, crit, sigs, body, et != 0)
            for h, ts, et, ch, eid, crit, sigs, body in zip(
                self.hashes,
                self.ts,
                self.event_times,
                self.channels,
                self.event_ids,
                self.criticalities,
                self.signatures,
                self.bodies,
                strict=True,
            )
        ]


@dataclass(frozen=True, slots=True)
class IngestResult:
    stored: int
    duplicates: int
    detections: int


@dataclass(frozen=True, slots=True)
class SearchQuery:
    endpoint: str
    start: int
    stop: int
    detections_only: bool = False
    limit: int = 1000
    skip: int = 0
    descending: bool = False


class Store(Protocol):
    """Everything the manager persists. Write methods return once the change is durable."""

    # users (admin API keys)
    def list_users(self) -> list[Row]: ...
    def get_user(self, uuid: str) -> Row | None: ...
    def user_by_key_hash(self, key_hash: str) -> Row | None: ...
    def create_user(self, row: Row) -> Row: ...
    def update_user(self, uuid: str, changes: Mapping[str, Any]) -> Row: ...
    def delete_user(self, uuid: str) -> Row: ...

    # endpoints
    def list_endpoints(self) -> list[Row]: ...
    def get_endpoint(self, uuid: str) -> Row | None: ...
    def create_endpoint(self, row: Row) -> Row: ...
    def update_endpoint(self, uuid: str, changes: Mapping[str, Any]) -> Row: ...
    def delete_endpoint(self, uuid: str) -> Row: ...
    def touch_endpoint(self, uuid: str, ip: str, when: int) -> None:
        """Record a connection; may be batched (not durable on return)."""

    def pin_hostname(self, uuid: str, hostname: str) -> str:
        """Set the hostname if none is pinned yet; return the pinned hostname."""

    def take_command(self, uuid: str, when: int) -> Row | None:
        """Return the pending command and mark it sent, atomically; None if nothing is pending."""

    def complete_command(self, uuid: str, result: Mapping[str, Any]) -> bool: ...

    # events, detections and reports
    def ingest(
        self, endpoint: str, events: EventBatch | Sequence[EventRow], rules: Mapping[str, RuleInfo]
    ) -> IngestResult:
        """Store the events not stored yet (same hash and own time), their detections and reports."""

    def search(self, query: SearchQuery) -> list[Row]: ...
    def report_states(self) -> dict[str, ReportState]: ...
    def archive_report(self, endpoint: str, report: Mapping[str, Any], when: int) -> bool: ...
    def archived_reports(self, endpoint: str, start: int, stop: int, limit: int) -> list[Row]: ...

    # IoCs
    def list_iocs(self, any_of: Mapping[str, str]) -> list[Row]: ...
    def upsert_iocs(self, rows: Sequence[Row]) -> None: ...
    def delete_iocs(self, all_of: Mapping[str, str]) -> list[Row]: ...
    def ioc_values(self) -> list[str]: ...

    # rules
    def list_rules(self) -> list[Row]: ...
    def put_rules(self, rows: Sequence[Row], update: bool) -> None: ...
    def delete_rules(self, name: str) -> list[Row]: ...

    # sysmon configs and tools
    def get_sysmon_config(self, os_name: str, version: str | None) -> Row | None: ...
    def put_sysmon_config(self, row: Row) -> None: ...
    def delete_sysmon_config(self, os_name: str, version: str | None) -> Row | None: ...
    def get_tool(self, os_name: str, name: str) -> Row | None: ...
    def list_tools(self, os_name: str) -> list[Row]: ...
    def put_tool(self, row: Row) -> Row: ...
    def delete_tool(self, os_name: str, name: str) -> Row | None: ...

    def stats(self) -> dict[str, int]: ...
    def close(self) -> None: ...
