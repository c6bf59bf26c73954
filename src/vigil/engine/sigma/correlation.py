"""Sigma correlation rules over a time window: ``event_count``, ``value_count``, ``temporal``,
``temporal_ordered``.

The engine matches base rules event by event; :class:`CorrelationEngine` is fed every event with
the Sigma ids of the base rules it matched and the event's timestamp, and returns the correlation
rules that fire. State is kept per (correlation rule, group-by values) and trimmed to the rule's
timespan. A correlation fires once, then its group starts a new window (so a burst of 1 000 events
over a threshold of 10 gives 100 hits, not 991). Correlations may reference other correlations:
a hit counts as a match of the correlation's id for the same event.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)

from vigil.engine.ir import Attack, SourceLocation
from vigil.engine.sigma.errors import UnsupportedConstruct
from vigil.engine.sigma.fields import field_paths
from vigil.engine.sigma.meta import attack_of, criticality_of, tags_of

__all__ = ["CorrelationEngine", "CorrelationHit", "CorrelationRuleIR", "compile_correlation"]

logger = logging.getLogger(__name__)

CorrelationKind = Literal["event_count", "value_count", "temporal", "temporal_ordered"]
_KINDS: dict[SigmaCorrelationType, CorrelationKind] = {
    SigmaCorrelationType.EVENT_COUNT: "event_count",
    SigmaCorrelationType.VALUE_COUNT: "value_count",
    SigmaCorrelationType.TEMPORAL: "temporal",
    SigmaCorrelationType.TEMPORAL_ORDERED: "temporal_ordered",
}
_OPS = {
    SigmaCorrelationConditionOperator.LT: "<",
    SigmaCorrelationConditionOperator.LTE: "<=",
    SigmaCorrelationConditionOperator.GT: ">",
    SigmaCorrelationConditionOperator.GTE: ">=",
    SigmaCorrelationConditionOperator.EQ: "==",
    SigmaCorrelationConditionOperator.NEQ: "!=",
}


@dataclass(frozen=True, slots=True)
class CorrelationRuleIR:
    """A compiled correlation rule. ``rules`` are the keys (Sigma ids) of the referenced rules, in order."""

    name: str
    sigma_id: str | None
    kind: CorrelationKind
    rules: tuple[str, ...]
    timespan: float
    group_by: tuple[str, ...] = ()
    #: alias -> ((rule key, field name), ...): the field each referenced rule's events use.
    aliases: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    op: str = ">="
    count: float = 1
    value_field: str | None = None
    generate: bool = False
    criticality: int = 0
    attack: tuple[Attack, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""
    source: SourceLocation | None = None

    def field_for(self, name: str, rule_key: str) -> str:
        for alias, mapping in self.aliases:
            if alias == name:
                return dict(mapping).get(rule_key, name)
        return name


@dataclass(frozen=True, slots=True)
class CorrelationHit:
    """One firing of a correlation rule."""

    rule: CorrelationRuleIR
    group: tuple[tuple[str, str], ...]
    first_timestamp: float
    timestamp: float
    #: events counted (event_count), distinct values (value_count) or rules seen (temporal*).
    value: float
    matched_rules: tuple[str, ...]


def _rule_key(ref: Any) -> str:
    target = ref.rule
    if target.id is None:
        raise UnsupportedConstruct(
            f"referenced rule {ref.reference!r} has no id: detections name rules by id"
        )
    return str(target.id)


def compile_correlation(rule: SigmaCorrelationRule, *, path: str = "", line: int = 0) -> CorrelationRuleIR:
    """Compile a correlation rule whose references were resolved (``SigmaCollection`` does that)."""
    kind = _KINDS.get(rule.type)
    if kind is None:
        raise UnsupportedConstruct(f"correlation type {rule.type.name.lower()} is not supported")
    if not isinstance(rule.condition, SigmaCorrelationCondition):
        raise UnsupportedConstruct(
            "extended correlation conditions (boolean expressions over rules) are not supported"
        )
    keys = tuple(_rule_key(r) for r in rule.rules or ())
    op, count, fieldref = _OPS[rule.condition.op], float(rule.condition.count), rule.condition.fieldref
    if isinstance(fieldref, list):
        if len(fieldref) != 1:
            raise UnsupportedConstruct("value_count over several fields is not supported")
        fieldref = fieldref[0]
    if kind in ("temporal", "temporal_ordered"):
        # Specification: every referenced rule must match within the timespan (in order for _ordered).
        op, count = ">=", float(len(keys))
    by_reference = {r.reference: key for r, key in zip(rule.rules or (), keys, strict=True)}

    def alias_key(ref: Any) -> str:
        if ref.reference not in by_reference:
            raise UnsupportedConstruct(
                f"alias refers to {ref.reference!r}, which is not among the correlated rules"
            )
        return by_reference[ref.reference]

    aliases = tuple(
        (alias.alias, tuple((alias_key(ref), name) for ref, name in alias.mapping.items()))
        for alias in rule.aliases.aliases.values()
    )
    return CorrelationRuleIR(
        name=rule.title,
        sigma_id=str(rule.id) if rule.id is not None else None,
        kind=kind,
        rules=keys,
        timespan=float(rule.timespan.seconds),
        group_by=tuple(rule.group_by or ()),
        aliases=aliases,
        op=op,
        count=count,
        value_field=fieldref,
        generate=rule.generate,
        criticality=criticality_of(rule.level),
        attack=attack_of(rule.tags),
        tags=tags_of(rule.tags),
        description=rule.description or "",
        source=SourceLocation(path, line) if path else None,
    )


def _compare(value: float, op: str, count: float) -> bool:
    match op:
        case "<":
            return value < count
        case "<=":
            return value <= count
        case ">":
            return value > count
        case ">=":
            return value >= count
        case "==":
            return value == count
    return value != count


def _field_value(event: Mapping[str, Any], name: str) -> str | None:
    for path in field_paths(name):
        node: Any = event
        for key in path:
            if not isinstance(node, Mapping) or key not in node:
                node = None
                break
            node = node[key]
        if node is not None and not isinstance(node, Mapping | list):
            return node if isinstance(node, str) else str(node)
    return None


@dataclass
class _Window:
    entries: deque[tuple[float, str, str | None]] = field(default_factory=deque)


class CorrelationEngine:
    """Evaluates correlation rules over the stream of base-rule matches.

    ``feed`` must see events in timestamp order per group for ``temporal_ordered``; the other kinds
    only need the timestamps to be within the window.
    """

    def __init__(self, rules: Sequence[CorrelationRuleIR]) -> None:
        self.rules = list(rules)
        self._by_ref: dict[str, list[CorrelationRuleIR]] = {}
        for rule in self.rules:
            for key in dict.fromkeys(rule.rules):
                self._by_ref.setdefault(key, []).append(rule)
        self._state: dict[tuple[int, tuple[tuple[str, str], ...]], _Window] = {}
        self._rule_of: dict[int, CorrelationRuleIR] = {id(r): r for r in self.rules}
        self._feeds = 0

    #: ``feed`` calls between two sweeps of the groups whose window has expired.
    SWEEP_EVERY = 4096

    @property
    def groups(self) -> int:
        """Open (correlation, group) windows: bounded by the sweep in a long-running agent."""
        return len(self._state)

    def sweep(self, now: float) -> None:
        """Forget the groups whose newest event is older than their rule's timespan at ``now``."""
        for key in [
            k for k, w in self._state.items() if w.entries[-1][0] < now - self._rule_of[k[0]].timespan
        ]:
            del self._state[key]

    @property
    def referenced_ids(self) -> frozenset[str]:
        """Ids of the rules some correlation listens to."""
        return frozenset(self._by_ref)

    def feed(
        self, event: Mapping[str, Any], matched_rule_ids: Iterable[str], timestamp: float
    ) -> list[CorrelationHit]:
        """Account one event matched by ``matched_rule_ids``; return the correlations that fire."""
        hits: list[CorrelationHit] = []
        self._feeds += 1
        if self._feeds % self.SWEEP_EVERY == 0:
            self.sweep(timestamp)
        pending = [r for r in matched_rule_ids if r in self._by_ref]
        seen: set[str] = set()
        while pending:
            key = pending.pop(0)
            if key in seen:
                continue
            seen.add(key)
            for rule in self._by_ref.get(key, ()):
                hit = self._account(rule, key, event, timestamp)
                if hit is not None:
                    hits.append(hit)
                    if rule.sigma_id is not None and rule.sigma_id in self._by_ref:
                        pending.append(rule.sigma_id)
        return hits

    def _account(
        self, rule: CorrelationRuleIR, key: str, event: Mapping[str, Any], ts: float
    ) -> CorrelationHit | None:
        group: list[tuple[str, str]] = []
        for name in rule.group_by:
            value = _field_value(event, rule.field_for(name, key))
            if value is None:
                return None  # an event without the group-by field belongs to no group
            group.append((name, value))
        value = None
        if rule.kind == "value_count" and rule.value_field is not None:
            value = _field_value(event, rule.field_for(rule.value_field, key))
            if value is None:
                return None
        gkey = (id(rule), tuple(group))
        window = self._state.setdefault(gkey, _Window())
        entries = window.entries
        entries.append((ts, key, value))
        while entries and entries[0][0] < ts - rule.timespan:
            entries.popleft()
        measured = self._measure(rule, entries)
        if measured is None or not _compare(measured, rule.op, rule.count):
            return None
        hit = CorrelationHit(
            rule=rule,
            group=tuple(group),
            first_timestamp=entries[0][0],
            timestamp=ts,
            value=measured,
            matched_rules=tuple(dict.fromkeys(e[1] for e in entries)),
        )
        del self._state[gkey]
        return hit

    @staticmethod
    def _measure(rule: CorrelationRuleIR, entries: deque[tuple[float, str, str | None]]) -> float | None:
        if rule.kind == "event_count":
            return float(len(entries))
        if rule.kind == "value_count":
            return float(len({e[2] for e in entries}))
        if rule.kind == "temporal":
            return float(len({e[1] for e in entries} & set(rule.rules)))
        # temporal_ordered: the rules must appear in their listed order (greedy earliest chain).
        position = 0
        for _, key, _ in entries:
            if position < len(rule.rules) and key == rule.rules[position]:
                position += 1
        return float(position) if position == len(rule.rules) else None
