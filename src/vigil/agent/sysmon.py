"""Events in the Sysmon for Linux shape, plus vigil's own `Vigil/Operational` channel.

Every event the agent emits is a plain dict::

    {"Event": {"System": {"Channel": ..., "Provider": {"Name": ...}, "EventID": 1,
                          "Computer": ..., "TimeCreated": {"SystemTime": RFC 3339 UTC ns},
                          "EventRecordID": n, "Execution": {"ProcessID": pid}},
               "EventData": {... all values are strings ...}}}

Sysmon's EventIDs and field names are used where Sysmon has the event, so rules written for Sysmon
for Linux apply unchanged. What Sysmon lacks goes on `Vigil/Operational` (EventIDs 100-199, listed
in `VIGIL_EVENT_IDS` and docs/agent-events.md).
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

SYSMON_CHANNEL = "Linux-Sysmon/Operational"
SYSMON_PROVIDER = "Linux-Sysmon"
VIGIL_CHANNEL = "Vigil/Operational"
VIGIL_PROVIDER = "Vigil"

# Sysmon EventIDs used on Linux.
PROCESS_CREATE = 1
NETWORK_CONNECT = 3
PROCESS_TERMINATE = 5
DRIVER_LOAD = 6
FILE_CREATE = 11
DNS_QUERY = 22
FILE_DELETE = 23

SYSMON_EVENT_NAMES: dict[int, str] = {
    PROCESS_CREATE: "ProcessCreate",
    NETWORK_CONNECT: "NetworkConnect",
    PROCESS_TERMINATE: "ProcessTerminate",
    DRIVER_LOAD: "DriverLoad",
    FILE_CREATE: "FileCreate",
    DNS_QUERY: "DNSQuery",
    FILE_DELETE: "FileDelete",
}

# Vigil/Operational EventIDs: activity Sysmon has no event for.
CANARY_ACCESS = 100  # a decoy file or directory was touched
EXEC_BLOCKED = 101  # an exec was denied (fanotify permission) or killed at exec
AGENT_HEALTH = 102  # a source started, stopped, could not start, or lost events
RESPONSE_ACTION = 103  # a response action ran (kill, dump, contain, ...) and its result
KERNEL_MODULE_UNLOAD = 104  # delete_module attempt (Sysmon has no unload event)

VIGIL_EVENT_IDS: dict[int, str] = {
    CANARY_ACCESS: "CanaryAccess",
    EXEC_BLOCKED: "ExecBlocked",
    AGENT_HEALTH: "AgentHealth",
    RESPONSE_ACTION: "ResponseAction",
    KERNEL_MODULE_UNLOAD: "KernelModuleUnload",
}

UNKNOWN = "-"


# The formatted second of the last time stamp: events come many per second, so most reuse it.
# One tuple, replaced whole, so threads never see a second paired with another's text.
_last_second: tuple[int, str, str] = (-1, "", "")


def _second(secs: int) -> tuple[int, str, str]:
    global _last_second
    cached = _last_second
    if cached[0] != secs:
        dt = datetime.fromtimestamp(secs, UTC)
        cached = _last_second = (secs, dt.strftime("%Y-%m-%dT%H:%M:%S"), dt.strftime("%Y-%m-%d %H:%M:%S"))
    return cached


def system_time(ts_ns: int) -> str:
    """RFC 3339 UTC with nanoseconds: `2026-12-04T16:40:00.123456789Z`."""
    secs, ns = divmod(ts_ns, 1_000_000_000)
    return f"{_second(secs)[1]}.{ns:09d}Z"


def utc_time(ts_ns: int) -> str:
    """Sysmon's `UtcTime` field: `2026-12-04 16:40:00.123` (milliseconds)."""
    secs, ns = divmod(ts_ns, 1_000_000_000)
    return f"{_second(secs)[2]}.{ns // 1_000_000:03d}"


def format_hashes(hashes: Mapping[str, str]) -> str:
    """Sysmon's `Hashes` value: `SHA1=..,MD5=..,SHA256=..` (upper-case hex, Sysmon's order)."""
    parts = [f"{alg.upper()}={hashes[alg].upper()}" for alg in ("sha1", "md5", "sha256") if alg in hashes]
    return ",".join(parts) if parts else UNKNOWN


class EventFactory:
    """Builds events for one host with a process-wide increasing EventRecordID."""

    def __init__(self, hostname: str | None = None) -> None:
        self.hostname = hostname or socket.gethostname()
        self._record_ids = itertools.count(1)

    def make(
        self,
        event_id: int,
        data: Mapping[str, Any],
        *,
        pid: int,
        ts_ns: int | None = None,
        channel: str = SYSMON_CHANNEL,
        provider: str = SYSMON_PROVIDER,
    ) -> dict[str, Any]:
        """An event; `data` values are stringified (`None` becomes `-`)."""
        if ts_ns is None:
            ts_ns = time.time_ns()
        event_data = {k: (UNKNOWN if v is None else str(v)) for k, v in data.items()}
        return {
            "Event": {
                "System": {
                    "Provider": {"Name": provider},
                    "EventID": event_id,
                    "Channel": channel,
                    "Computer": self.hostname,
                    "EventRecordID": next(self._record_ids),
                    "TimeCreated": {"SystemTime": system_time(ts_ns)},
                    "Execution": {"ProcessID": pid},
                },
                "EventData": event_data,
            }
        }

    def sysmon(
        self, event_id: int, data: Mapping[str, Any], *, pid: int, ts_ns: int | None = None
    ) -> dict[str, Any]:
        """A `Linux-Sysmon/Operational` event; `UtcTime` is filled in when missing."""
        if event_id not in SYSMON_EVENT_NAMES:
            raise ValueError(f"unknown Sysmon EventID {event_id}; known: {sorted(SYSMON_EVENT_NAMES)}")
        if ts_ns is None:
            ts_ns = time.time_ns()
        full = {"RuleName": UNKNOWN, "UtcTime": utc_time(ts_ns), **data}
        return self.make(event_id, full, pid=pid, ts_ns=ts_ns)

    def vigil(
        self, event_id: int, data: Mapping[str, Any], *, pid: int, ts_ns: int | None = None
    ) -> dict[str, Any]:
        """A `Vigil/Operational` event (see `VIGIL_EVENT_IDS`)."""
        if event_id not in VIGIL_EVENT_IDS:
            raise ValueError(
                f"unknown Vigil/Operational EventID {event_id}; known: {sorted(VIGIL_EVENT_IDS)}"
            )
        if ts_ns is None:
            ts_ns = time.time_ns()
        full = {"UtcTime": utc_time(ts_ns), **data}
        return self.make(event_id, full, pid=pid, ts_ns=ts_ns, channel=VIGIL_CHANNEL, provider=VIGIL_PROVIDER)


def event_data(event: Mapping[str, Any]) -> dict[str, str]:
    """The EventData of an event built here."""
    data: dict[str, str] = event["Event"]["EventData"]
    return data


def event_id(event: Mapping[str, Any]) -> int:
    eid: int = event["Event"]["System"]["EventID"]
    return eid
