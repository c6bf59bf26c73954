"""Correlation rules next to the engine: discovery, event time, and `vigil scan` output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.engine.sigma.test_correlation import BASE, EVENT_COUNT
from vigil.cli import main
from vigil.engine.sigma import correlation_engine_for, event_timestamp


def test_event_timestamp() -> None:
    def ev(t: object) -> dict[str, object]:
        return {"Event": {"System": {"TimeCreated": {"SystemTime": t}}}}

    assert event_timestamp(ev("1970-01-01T00:01:00Z")) == 60.0
    assert event_timestamp(ev("1970-01-01T00:01:00.5Z")) == 60.5
    assert event_timestamp(ev("2021-10-20T13:39:12.7319042Z")) == pytest.approx(1634737152.7319042)
    assert event_timestamp(ev("1970-01-01T01:00:00+01:00")) == 0.0
    assert event_timestamp(ev("yesterday")) is None
    assert event_timestamp({"Event": {"System": {}}}) is None
    assert event_timestamp({}) is None


def test_no_correlation_rules_means_no_engine(tmp_path: Path) -> None:
    (tmp_path / "base.yml").write_text(BASE)
    assert correlation_engine_for([tmp_path]) is None
    (tmp_path / "corr.yml").write_text(EVENT_COUNT)
    engine = correlation_engine_for([tmp_path])
    assert engine is not None and [r.name for r in engine.rules] == ["Brute force"]


def test_vigil_scan_reports_correlation_hits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "base.yml").write_text(BASE)
    (rules / "corr.yml").write_text(EVENT_COUNT)
    events = tmp_path / "events.jsonl"
    lines = []
    for i, user in enumerate(["bob", "alice", "bob", "bob"]):
        lines.append(
            json.dumps(
                {
                    "Event": {
                        "System": {
                            "Channel": "Security",
                            "EventID": "4625",
                            "TimeCreated": {"SystemTime": f"2024-01-01T00:00:{10 * i:02d}Z"},
                        },
                        "EventData": {"TargetUserName": user},
                    }
                }
            )
        )
    events.write_text("\n".join(lines) + "\n")
    assert main(["scan", "--rules", str(rules), str(events)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    detections = [o["Detection"] for o in out if "Detection" in o]
    assert len([o for o in out if "Event" in o]) == 4  # the base rule matched every event
    assert detections == [
        {
            "Signature": ["Brute force"],
            "SigmaIDs": ["33333333-3333-4333-8333-333333333333"],
            "Criticality": 8,
            "Correlation": {
                "Type": "event_count",
                "Group": {"TargetUserName": "bob"},
                "Value": 3.0,
                "FirstTime": "2024-01-01T00:00:00Z",
                "LastTime": "2024-01-01T00:00:30Z",
                "Rules": ["11111111-1111-4111-8111-111111111111"],
            },
            "ATTACK": [
                {
                    "ID": "T1110",
                    "Tactic": "credential-access",
                    "Reference": "https://attack.mitre.org/techniques/T1110",
                }
            ],
        }
    ]


def test_agent_detector_adds_completed_correlations_to_the_detection(tmp_path: Path) -> None:
    from vigil.agent.detection import Detector
    from vigil.engine import Engine

    (tmp_path / "base.yml").write_text(BASE)
    (tmp_path / "corr.yml").write_text(EVENT_COUNT)
    engine = Engine()
    engine.load_path(tmp_path)
    detector = Detector(engine, threshold=8, correlation=correlation_engine_for([tmp_path]))

    def failed(i: int) -> dict[str, object]:
        return {
            "Event": {
                "System": {
                    "Channel": "Security",
                    "EventID": "4625",
                    "TimeCreated": {"SystemTime": f"2024-01-01T00:00:{i:02d}Z"},
                },
                "EventData": {"TargetUserName": "bob"},
            }
        }

    verdicts, events = [], []
    for i in range(3):
        events.append(failed(i))
        verdicts.append(detector.inspect(events[-1]))
    assert [v.alert for v in verdicts] == [False, False, True]  # the base rule has no level: criticality 0
    detection = events[-1]["Event"]["Detection"]  # type: ignore[index]
    assert detection["Signature"] == ["Failed logon", "Brute force"]
    assert detection["SigmaIDs"] == [
        "11111111-1111-4111-8111-111111111111",
        "33333333-3333-4333-8333-333333333333",
    ]
    assert detection["Criticality"] == 8
    assert detection["Correlations"][0]["Group"] == {"TargetUserName": "bob"}
