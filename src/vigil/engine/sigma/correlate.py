"""Running Sigma correlation rules next to the engine: find them, time events, report hits.

``vigil scan`` and the agent match events with the engine, then feed the Sigma ids of the rules
that matched (``MatchResult.sigma_ids``) and the event's time to a :class:`CorrelationEngine`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil.engine.sigma.loader import SIGMA_SUFFIXES, load_sigma

if TYPE_CHECKING:  # imported when there are correlation rules: the module needs pySigma
    from vigil.engine.sigma.correlation import CorrelationEngine, CorrelationHit

__all__ = ["correlation_engine_for", "event_timestamp", "hit_record"]

logger = logging.getLogger(__name__)

_CORRELATION_KEY = re.compile(rb"^correlation\s*:", re.MULTILINE)
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$")


def _sigma_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(f for f in p.rglob("*") if f.suffix in SIGMA_SUFFIXES and f.is_file())
        elif p.suffix in SIGMA_SUFFIXES:
            files.append(p)
    return files


def correlation_engine_for(paths: Iterable[str | Path]) -> CorrelationEngine | None:
    """A CorrelationEngine for the Sigma correlation rules under ``paths``, None when there are none.

    Files are first searched for a top-level ``correlation:`` key, so rule sets without correlation
    rules cost one read of each file and no parsing.
    """
    paths = list(paths)
    found = False
    for f in _sigma_files(paths):
        try:
            data = f.read_bytes()
            if b"correlation" in data and _CORRELATION_KEY.search(data):
                found = True
                break
        except OSError:
            continue
    if not found:
        return None
    result = load_sigma(paths)
    for rej in result.rejections:
        if rej.correlation:
            logger.warning("sigma correlation skipped: %s", rej)
    if not result.correlations:
        return None
    logger.info("%d sigma correlation rule(s) loaded", len(result.correlations))
    from vigil.engine.sigma.correlation import CorrelationEngine

    return CorrelationEngine(result.correlations)


def event_timestamp(event: Mapping[str, Any]) -> float | None:
    """``Event.System.TimeCreated.SystemTime`` as POSIX seconds (UTC when no offset), or None."""
    system = event.get("Event", {}).get("System") if isinstance(event.get("Event"), Mapping) else None
    created = system.get("TimeCreated") if isinstance(system, Mapping) else None
    text = created.get("SystemTime") if isinstance(created, Mapping) else None
    if not isinstance(text, str):
        return None
    m = _TIME.match(text.strip())
    if m is None:
        return None
    date, clock, frac, zone = m.groups()
    offset = "+00:00" if zone in (None, "Z") else zone if ":" in zone else zone[:3] + ":" + zone[3:]
    try:
        moment = datetime.fromisoformat(f"{date}T{clock}{offset}")
    except ValueError:
        return None
    return moment.astimezone(UTC).timestamp() + (float("0." + frac) if frac else 0.0)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def hit_record(hit: CorrelationHit) -> dict[str, Any]:
    """A correlation hit as a detection record (WHIDS-like field names)."""
    rule = hit.rule
    record: dict[str, Any] = {
        "Signature": [rule.name],
        "SigmaIDs": [rule.sigma_id] if rule.sigma_id else [],
        "Criticality": rule.criticality,
        "Correlation": {
            "Type": rule.kind,
            "Group": dict(hit.group),
            "Value": hit.value,
            "FirstTime": _iso(hit.first_timestamp),
            "LastTime": _iso(hit.timestamp),
            "Rules": list(hit.matched_rules),
        },
    }
    if rule.attack:
        record["ATTACK"] = [{"ID": a.id, "Tactic": a.tactic, "Reference": a.reference} for a in rule.attack]
    return record
