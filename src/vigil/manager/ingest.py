"""From a ``POST /logs`` body (NDJSON of WHIDS events) to rows for the store and stream payloads.

Malformed lines are skipped and counted; every other line is stored.

The hash contract (the dedupe key, and the ``<event-hash>`` of artifact directories):

- a line ``{"Event":{...}}`` without ``EdrData`` (what vigil agents send) is stored byte for byte as
  received and its hash is the SHA-1 of those bytes. vigil agents write each event as compact JSON
  with sorted keys (:func:`vigil.agent.spool.serialize_event`), so this is the SHA-1 of the
  canonical form they also name artifact directories with, and a re-sent batch (the same spooled
  bytes) is stored once. No second serialization is needed: it was ~6 µs of the ~15 µs an event
  cost to parse;
- a line with ``EdrData`` (WHIDS agents) or of another shape is stored in canonical form (keys
  sorted, ``EdrData`` removed, ``{"Event": ...}`` only); its hash is ``EdrData.Event.Hash`` when
  the agent set one, otherwise the SHA-1 of that canonical form.

A sender that does not sort keys gets a hash of its own bytes, which still dedupes its retries.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from vigil.manager.errors import BadRequest
from vigil.manager.store.base import EventBatch, EventRow
from vigil.manager.times import format_ns, parse_rfc3339

__all__ = ["ParsedBatch", "attach_edr_data", "edr_data", "parse_ndjson"]

logger = logging.getLogger(__name__)

_HEX = frozenset("0123456789abcdefABCDEF")
_PREFIX = b'{"Event":{'
#: How many malformed line numbers a response lists (the count is always exact).
MAX_REPORTED_LINES = 20


@dataclass(slots=True)
class ParsedBatch:
    events: EventBatch = field(default_factory=EventBatch)
    malformed: int = 0
    malformed_lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows(self) -> list[EventRow]:
        return self.events.rows()

    def reject(self, line_no: int, reason: str) -> None:
        self.malformed += 1
        if len(self.malformed_lines) < MAX_REPORTED_LINES:
            self.malformed_lines.append({"line": line_no, "error": reason})


def _event_id(system: dict[str, Any]) -> int:
    value = system.get("EventID", 0)
    if isinstance(value, dict):
        value = value.get("Value", 0)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _parse_line(line: bytes, receipt: int, out: EventBatch) -> None:
    """Append the event of ``line`` to ``out`` (all columns or, on an error, none)."""
    obj = orjson.loads(line)
    if not isinstance(obj, dict) or not isinstance(obj.get("Event"), dict):
        raise BadRequest('not an event object: expected {"Event": {...}}')
    event: dict[str, Any] = obj["Event"]
    edr = event.pop("EdrData", None)
    system = event.get("System")
    if not isinstance(system, dict):
        system = {}
    channel = system.get("Channel", "")
    if not isinstance(channel, str):
        channel = str(channel)
    ts = receipt
    timed = False
    created = system.get("TimeCreated")
    if isinstance(created, dict) and isinstance(created.get("SystemTime"), str):
        try:
            ts = parse_rfc3339(created["SystemTime"])
            timed = True
        except BadRequest:
            ts = receipt
    signatures: tuple[str, ...] = ()
    criticality = 0
    detection = event.get("Detection")
    if isinstance(detection, dict):
        sigs = detection.get("Signature")
        if isinstance(sigs, list):
            signatures = tuple(dict.fromkeys(str(s) for s in sigs))
        crit = detection.get("Criticality", 0)
        if isinstance(crit, int) and not isinstance(crit, bool):
            criticality = crit
    given = None
    if edr is None and event and len(obj) == 1 and line.startswith(_PREFIX) and line.endswith(b"}}"):
        # As received: a non-empty event ending in "}}" is what attach_edr_data can splice into.
        body = line
    else:
        # Canonical form (sorted keys, as WHIDS' Go maps marshal), which the hash then covers.
        body = orjson.dumps({"Event": event}, option=orjson.OPT_SORT_KEYS)
        if isinstance(edr, dict) and isinstance(edr.get("Event"), dict):
            given = edr["Event"].get("Hash")
    if isinstance(given, str) and 16 <= len(given) <= 128 and _HEX.issuperset(given):
        digest = given.lower()
    else:
        digest = hashlib.sha1(body, usedforsecurity=False).hexdigest()
    event_id = _event_id(system)
    out.hashes.append(digest)
    out.ts.append(ts)
    out.event_times.append(ts if timed else 0)
    out.channels.append(channel)
    out.event_ids.append(event_id)
    out.criticalities.append(criticality)
    out.signatures.append(signatures)
    out.bodies.append(body)


def parse_ndjson(body: bytes, receipt: int) -> ParsedBatch:
    """Parse every line; a bad line is counted with its 1-based number and the reason."""
    batch = ParsedBatch()
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            _parse_line(line, receipt, batch.events)
        except orjson.JSONDecodeError as exc:
            batch.reject(number, f"invalid JSON: {exc}")
        except BadRequest as exc:
            batch.reject(number, exc.message)
    if batch.malformed:
        logger.warning("skipped %d malformed event line(s)", batch.malformed)
    return batch


def edr_data(endpoint: dict[str, Any], digest: str, detection: bool, receipt: int) -> bytes:
    """The ``EdrData`` section WHIDS adds on ingest, as compact JSON."""
    return orjson.dumps(
        {
            "Endpoint": {
                "UUID": endpoint.get("uuid", ""),
                "IP": endpoint.get("ip", ""),
                "Hostname": endpoint.get("hostname", ""),
                "Group": endpoint.get("grp", ""),
            },
            "Event": {"Hash": digest, "Detection": detection, "ReceiptTime": format_ns(receipt)},
        }
    )


def attach_edr_data(body: bytes, edr: bytes) -> bytes:
    """Splice ``EdrData`` into a stored body (``{"Event":{...}}``) without re-parsing it."""
    if body.endswith(b"{}}"):
        return body[:-2] + b'"EdrData":' + edr + b"}}"
    return body[:-2] + b',"EdrData":' + edr + b"}}"
