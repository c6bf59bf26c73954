"""Detection reports and endpoint ranking: gene's reducer (WHIDS spec §5.3), kept in the database.

A :class:`ReportState` holds the accumulators of one endpoint. The formulas only need the counts of
each criticality value (0..10), not the ordered lists gene keeps, so the state is small and is
stored with each ingest transaction: reports survive restarts and rule changes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vigil.manager.times import format_ns

__all__ = ["ReportState", "RuleInfo", "compute_reports", "go_round", "trunc"]


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What the reducer needs of a rule the manager knows: criticality and ATT&CK data."""

    criticality: int = 0
    techniques: tuple[str, ...] = ()
    tactics: tuple[str, ...] = ()


def trunc(value: float, places: int) -> float:
    """Truncate toward zero to ``places`` decimals, as gene's reducer does."""
    factor = 10.0**places
    return float(math.trunc(value * factor) / factor)


def go_round(value: float) -> int:
    """Go's math.Round: halves away from zero (Python's round() rounds halves to even)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def _hist_mean_std(hist: list[int]) -> tuple[int, float]:
    count = sum(hist)
    if count == 0:
        return 0, 0.0
    mean = sum(v * c for v, c in enumerate(hist)) / count
    variance = sum(c * (v - mean) ** 2 for v, c in enumerate(hist)) / count
    return count, math.sqrt(variance)


@dataclass(slots=True)
class ReportState:
    """Accumulators of one endpoint's detections (the persistent part of gene's ReducedStats)."""

    identifier: str
    alerts: int = 0
    by_signature: dict[str, int] = field(default_factory=dict)  # insertion-ordered
    total_sigs: int = 0
    sum_alert_crit: int = 0
    sum_rule_crit: int = 0
    techniques: list[str] = field(default_factory=list)
    tactics: list[str] = field(default_factory=list)
    sig_crit_hist: list[int] = field(default_factory=lambda: [0] * 11)
    alert_crit_hist: list[int] = field(default_factory=lambda: [0] * 11)
    start: int | None = None
    stop: int | None = None

    def add_alert(self, signatures: Iterable[str], event_ns: int, rules: Mapping[str, RuleInfo]) -> None:
        """Account one alert whose ``Detection.Signature`` is ``signatures``."""
        event_crit = 0
        for sig in signatures:
            self.by_signature[sig] = self.by_signature.get(sig, 0) + 1
            self.total_sigs += 1
            info = rules.get(sig)
            if info is None:
                continue
            for technique in info.techniques:
                if technique not in self.techniques:
                    self.techniques.append(technique)
            for tactic in info.tactics:
                if tactic not in self.tactics:
                    self.tactics.append(tactic)
            if info.criticality != 0:
                crit = max(0, min(info.criticality, 10))
                self.sum_rule_crit += info.criticality
                event_crit += info.criticality
                self.sig_crit_hist[crit] += 1
        capped = min(event_crit, 10)
        self.sum_alert_crit += capped
        self.alert_crit_hist[capped] += 1
        self.alerts += 1
        self.start = event_ns if self.start is None else min(self.start, event_ns)
        self.stop = event_ns if self.stop is None else max(self.stop, event_ns)

    def to_json(self) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "alerts": self.alerts,
            "by_signature": self.by_signature,
            "total_sigs": self.total_sigs,
            "sum_alert_crit": self.sum_alert_crit,
            "sum_rule_crit": self.sum_rule_crit,
            "techniques": self.techniques,
            "tactics": self.tactics,
            "sig_crit_hist": self.sig_crit_hist,
            "alert_crit_hist": self.alert_crit_hist,
            "start": self.start,
            "stop": self.stop,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReportState:
        return cls(**data)

    def score(self, count_sigs_all: int) -> dict[str, Any]:
        """The ReducedStats JSON of this endpoint, without ``bounded-score`` (needs the fleet)."""
        avg_alert = trunc(self.sum_alert_crit / self.alerts, 2) if self.alerts else 0.0
        avg_sig = trunc(self.sum_rule_crit / self.total_sigs, 2) if self.total_sigs else 0.0
        _, std_alert = _hist_mean_std(self.alert_crit_hist)
        _, std_sig = _hist_mean_std(self.sig_crit_hist)
        uniq = len(self.by_signature)
        diversity = trunc(uniq * 100 / count_sigs_all, 2) if count_sigs_all else 0.0
        sig_metric = uniq * go_round(avg_sig)
        alert_metric = go_round(avg_alert * diversity)
        start = self.start or 0
        stop = self.stop or 0
        return {
            "identifier": self.identifier,
            "alert-count": self.alerts,
            "count-by-signature": dict(self.by_signature),
            "signatures": list(self.by_signature),
            "techniques": list(self.techniques) or None,
            "tactics": list(self.tactics) or None,
            "signature-count": self.total_sigs,
            "sum-alert-criticality": self.sum_alert_crit,
            "avg-alert-criticality": avg_alert,
            "std-dev-alert-criticality": trunc(std_alert, 2),
            "sum-rule-criticality": self.sum_rule_crit,
            "avg-signature-criticality": avg_sig,
            "std-dev-signature-criticality": trunc(std_sig, 2),
            "signature-diversity": diversity,
            "count-uniq-signatures": uniq,
            "signature-criticality-metric": sig_metric,
            "alert-criticality-metric": alert_metric,
            "score": alert_metric + sig_metric,
            "bounded-score": 0.0,
            "start-time": format_ns(start),
            "median-time": format_ns(start + (stop - start) // 2),
            "stop-time": format_ns(stop),
        }


def compute_reports(states: Mapping[str, ReportState]) -> dict[str, dict[str, Any]]:
    """ReducedStats of every endpoint, with signature diversity and bounded score across the fleet."""
    all_sigs: set[str] = set()
    for state in states.values():
        all_sigs.update(state.by_signature)
    reports = {uuid: state.score(len(all_sigs)) for uuid, state in states.items()}
    best = max((r["score"] for r in reports.values()), default=0)
    for report in reports.values():
        report["bounded-score"] = trunc(report["score"] * 100 / best, 1) if best > 0 else 0.0
    return reports
