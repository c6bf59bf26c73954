"""Build `Vigil/Operational` events (canary access, blocked exec, response action) as dicts.

Same shape, EventIDs and placeholders as the sensors' ``vigil.agent.sysmon`` builder (which also
numbers events); kept in one function so the actions can switch to it once both are merged.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from typing import Any

CHANNEL = "Vigil/Operational"
PROVIDER = "Vigil"
CANARY_ACCESS = 100
BLOCKED_EXEC = 101
RESPONSE_ACTION = 103
UNKNOWN = "-"

Event = dict[str, Any]


def _system_time(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def _utc_time(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs)) + f".{frac // 1_000_000:03d}"


def operational_event(event_id: int, data: Mapping[str, object], *, ns: int | None = None) -> Event:
    """A ``{"Event": {"System", "EventData"}}`` dict; every EventData value is a string, as Sysmon's."""
    now = time.time_ns() if ns is None else ns
    event_data = {"UtcTime": _utc_time(now)}
    event_data.update({k: UNKNOWN if v is None else str(v) for k, v in data.items()})
    return {
        "Event": {
            "System": {
                "Channel": CHANNEL,
                "EventID": event_id,
                "Computer": socket.gethostname(),
                "Provider": {"Name": PROVIDER},
                "Execution": {"ProcessID": os.getpid()},
                "TimeCreated": {"SystemTime": _system_time(now)},
            },
            "EventData": event_data,
        }
    }
