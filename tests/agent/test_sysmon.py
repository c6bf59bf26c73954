"""The event shape: Sysmon for Linux System fields, string EventData, Vigil/Operational IDs."""

from __future__ import annotations

import pytest

from vigil.agent.sysmon import (
    AGENT_HEALTH,
    CANARY_ACCESS,
    EXEC_BLOCKED,
    PROCESS_CREATE,
    EventFactory,
    format_hashes,
    system_time,
    utc_time,
)

TS = 1_796_400_000_123_456_789  # 2026-12-04T16:00:00.123456789Z


def test_sysmon_event_shape() -> None:
    f = EventFactory("host1")
    e = f.sysmon(
        PROCESS_CREATE, {"ProcessId": 42, "Image": "/usr/bin/true", "Missing": None}, pid=7, ts_ns=TS
    )
    assert e == {
        "Event": {
            "System": {
                "Provider": {"Name": "Linux-Sysmon"},
                "EventID": 1,
                "Channel": "Linux-Sysmon/Operational",
                "Computer": "host1",
                "EventRecordID": 1,
                "TimeCreated": {"SystemTime": "2026-12-04T16:00:00.123456789Z"},
                "Execution": {"ProcessID": 7},
            },
            "EventData": {
                "RuleName": "-",
                "UtcTime": "2026-12-04 16:00:00.123",
                "ProcessId": "42",
                "Image": "/usr/bin/true",
                "Missing": "-",
            },
        }
    }
    assert f.sysmon(PROCESS_CREATE, {}, pid=7)["Event"]["System"]["EventRecordID"] == 2


def test_vigil_operational_ids() -> None:
    f = EventFactory("h")
    for eid in (CANARY_ACCESS, EXEC_BLOCKED, AGENT_HEALTH):
        e = f.vigil(eid, {"Image": "/x"}, pid=1, ts_ns=TS)
        assert e["Event"]["System"]["Channel"] == "Vigil/Operational"
        assert e["Event"]["System"]["Provider"]["Name"] == "Vigil"
        assert e["Event"]["System"]["EventID"] == eid
    assert (CANARY_ACCESS, EXEC_BLOCKED, AGENT_HEALTH) == (100, 101, 102)


def test_unknown_event_ids_are_refused_with_the_known_ones() -> None:
    f = EventFactory("h")
    with pytest.raises(ValueError, match=r"unknown Sysmon EventID 7; known: \[1, 3, 5, 6, 11, 22, 23\]"):
        f.sysmon(7, {}, pid=1)
    with pytest.raises(ValueError, match="unknown Vigil/Operational EventID 1"):
        f.vigil(1, {}, pid=1)


def test_time_and_hash_formats() -> None:
    assert system_time(TS) == "2026-12-04T16:00:00.123456789Z"
    assert utc_time(TS) == "2026-12-04 16:00:00.123"
    assert format_hashes({"md5": "ab", "sha256": "cd", "sha1": "ef"}) == "SHA1=EF,MD5=AB,SHA256=CD"
    assert format_hashes({}) == "-"
