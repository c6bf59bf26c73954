"""Correlation rules (Sigma correlation specification): event_count, value_count, temporal,
temporal_ordered over a timespan, grouped by fields; positive and negative cases."""

from __future__ import annotations

from typing import Any

from tests.engine.sigma.matching import matches
from vigil.engine.sigma import CorrelationEngine, SigmaRuleSet, load_sigma_text

BASE = """title: Failed logon
id: 11111111-1111-4111-8111-111111111111
name: failed_logon
logsource:
    product: windows
    service: security
detection:
    sel:
        EventID: 4625
    condition: sel
---
title: Successful logon
id: 22222222-2222-4222-8222-222222222222
name: successful_logon
logsource:
    product: windows
    service: security
detection:
    sel:
        EventID: 4624
    condition: sel
"""


def ruleset(correlation: str) -> SigmaRuleSet:
    result = load_sigma_text(BASE + "---\n" + correlation, "corr.yml")
    assert not result.rejections, [str(r) for r in result.rejections]
    return result


def logon(eid: int, user: str, ip: str = "10.0.0.1") -> dict[str, Any]:
    return {
        "Event": {
            "System": {"Channel": "Security", "EventID": str(eid)},
            "EventData": {"TargetUserName": user, "IpAddress": ip},
        }
    }


def run(result: SigmaRuleSet, stream: list[tuple[float, dict[str, Any]]]) -> list[tuple[float, Any]]:
    engine = CorrelationEngine(result.correlations)
    hits = []
    for ts, event in stream:
        ids = [r.ir.sigma_id for r in result.rules if r.ir.sigma_id and matches(r.ir, event)]
        hits.extend((ts, h) for h in engine.feed(event, ids, ts))
    return hits


EVENT_COUNT = """title: Brute force
id: 33333333-3333-4333-8333-333333333333
level: high
tags: [attack.credential-access, attack.t1110]
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [TargetUserName]
    timespan: 1m
    condition:
        gte: 3
"""


def test_event_count_fires_per_group_within_the_timespan() -> None:
    result = ruleset(EVENT_COUNT)
    (corr,) = result.correlations
    assert (corr.kind, corr.rules, corr.timespan, corr.group_by) == (
        "event_count",
        ("11111111-1111-4111-8111-111111111111",),
        60.0,
        ("TargetUserName",),
    )
    assert corr.criticality == 8 and corr.attack[0].id == "T1110"
    stream = [
        (0, logon(4625, "bob")),
        (10, logon(4625, "alice")),
        (20, logon(4625, "bob")),
        (25, logon(4624, "bob")),  # not a failed logon
        (30, logon(4625, "bob")),
    ]
    hits = run(result, stream)
    assert [(ts, h.group, h.value, h.first_timestamp) for ts, h in hits] == [
        (30, (("TargetUserName", "bob"),), 3.0, 0)
    ]
    assert hits[0][1].rule.name == "Brute force"


def test_event_count_forgets_events_older_than_the_timespan() -> None:
    result = ruleset(EVENT_COUNT)
    stream = [
        (0, logon(4625, "bob")),
        (50, logon(4625, "bob")),
        (61, logon(4625, "bob")),
        (100, logon(4625, "bob")),
    ]
    hits = run(result, stream)
    assert [ts for ts, _ in hits] == [100]  # at 61 the event at 0 is out of the window


def test_event_count_starts_a_new_window_after_firing() -> None:
    result = ruleset(EVENT_COUNT)
    hits = run(result, [(float(i), logon(4625, "bob")) for i in range(7)])
    assert [ts for ts, _ in hits] == [2.0, 5.0]


def test_value_count() -> None:
    result = ruleset(
        """title: Password spray
id: 44444444-4444-4444-8444-444444444444
correlation:
    type: value_count
    rules: [failed_logon]
    group-by: [IpAddress]
    timespan: 5m
    condition:
        gte: 3
        field: TargetUserName
"""
    )
    same_user = [(float(i), logon(4625, "bob", "10.9.9.9")) for i in range(5)]
    assert run(result, same_user) == []
    spray = [(float(i), logon(4625, u, "10.9.9.9")) for i, u in enumerate(["a", "b", "a", "c"])]
    hits = run(result, spray)
    assert [(ts, h.value, h.group) for ts, h in hits] == [(3.0, 3.0, (("IpAddress", "10.9.9.9"),))]


TEMPORAL = """title: Logon after failures
id: 55555555-5555-4555-8555-555555555555
correlation:
    type: {kind}
    rules:
        - failed_logon
        - successful_logon
    group-by: [TargetUserName]
    timespan: 10s
"""


def test_temporal_needs_every_rule_in_the_window_in_any_order() -> None:
    result = ruleset(TEMPORAL.format(kind="temporal"))
    assert len(run(result, [(0, logon(4624, "bob")), (5, logon(4625, "bob"))])) == 1
    assert run(result, [(0, logon(4625, "bob")), (5, logon(4625, "bob"))]) == []
    assert run(result, [(0, logon(4625, "bob")), (11, logon(4624, "bob"))]) == []
    assert run(result, [(0, logon(4625, "bob")), (5, logon(4624, "alice"))]) == []


def test_temporal_ordered_needs_the_listed_order() -> None:
    result = ruleset(TEMPORAL.format(kind="temporal_ordered"))
    hits = run(result, [(0, logon(4625, "bob")), (5, logon(4624, "bob"))])
    assert len(hits) == 1 and hits[0][1].matched_rules == (
        "11111111-1111-4111-8111-111111111111",
        "22222222-2222-4222-8222-222222222222",
    )
    assert run(result, [(0, logon(4624, "bob")), (5, logon(4625, "bob"))]) == []


def test_aliases_map_a_group_field_per_rule() -> None:
    result = ruleset(
        """title: Same source
id: 66666666-6666-4666-8666-666666666666
correlation:
    type: temporal
    rules: [failed_logon, successful_logon]
    group-by: [src]
    timespan: 1m
    aliases:
        src:
            failed_logon: IpAddress
            successful_logon: WorkstationName
"""
    )
    ok = {
        "Event": {
            "System": {"Channel": "Security", "EventID": "4624"},
            "EventData": {"WorkstationName": "10.0.0.7"},
        }
    }
    assert len(run(result, [(0, logon(4625, "x", "10.0.0.7")), (1, ok)])) == 1
    assert run(result, [(0, logon(4625, "x", "10.0.0.8")), (1, ok)]) == []


def test_correlation_of_an_unknown_rule_is_rejected() -> None:
    text = BASE + "---\n" + EVENT_COUNT.replace("[failed_logon]", "[no_such_rule]")
    result = load_sigma_text(text, "corr.yml")
    assert not result.correlations
    (rej,) = result.rejections
    assert rej.title == "Brute force" and "no_such_rule" in rej.reason


def test_expired_groups_are_forgotten() -> None:
    result = ruleset(EVENT_COUNT)
    engine = CorrelationEngine(result.correlations)
    failed = "11111111-1111-4111-8111-111111111111"
    for i in range(100):
        engine.feed(logon(4625, f"user{i}"), [failed], float(i))
    assert engine.groups == 100
    engine.sweep(100.0)  # timespan 60 s: users 0..39 are older than 40 s
    assert engine.groups == 60
    engine.SWEEP_EVERY = 10
    for i in range(10):
        engine.feed(logon(4625, "late"), [failed], 1000.0 + i)
    assert engine.groups == 1
