"""Sigma log sources -> the (channel, EventIDs) meta filter of a vigil rule.

A log source either maps to the channels and EventIDs vigil's readers and agent produce, or is
rejected with :class:`UnsupportedLogSource` naming why. The tables are facts about Windows
(Sysmon event IDs, PowerShell and Windows service channels) and about vigil's own Linux events
(``../shared/design.md``: Sysmon for Linux schema on ``Linux-Sysmon/Operational``). Windows service
channels come from pySigma's table of them, completed with the services SigmaHQ uses that it lacks.

Each mapping also says who produces the events (:class:`Producer`): ``live`` means the vigil agent
emits them; ``scan`` means only ``vigil scan`` over logs exported in that shape sees them (Windows
EVTX files, or Linux audit/syslog records converted to the documented JSON shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sigma.pipelines.common import windows_logsource_mapping
from sigma.rule import SigmaLogSource

from vigil.engine.sigma.errors import UnsupportedLogSource

__all__ = [
    "AUDIT_CHANNEL",
    "LINUX_SYSMON_CHANNEL",
    "SYSLOG_CHANNEL",
    "SYSMON_CHANNEL",
    "EventFilter",
    "LogSourceMapping",
    "Producer",
    "map_logsource",
]

SYSMON_CHANNEL = "Microsoft-Windows-Sysmon/Operational"
LINUX_SYSMON_CHANNEL = "Linux-Sysmon/Operational"
#: One Linux audit record per event; EventData holds the record's fields (``type``, ``syscall``,
#: ``exe``, ``a0``...) with auditd's interpreted values. Produced by exporting audit logs.
AUDIT_CHANNEL = "Linux-Audit"
#: One syslog line per event; EventData holds ``Message`` (and, when known, ``Program``/``Host``).
SYSLOG_CHANNEL = "Linux-Syslog"

Producer = Literal["live", "scan"]
EventFilter = tuple[tuple[str, tuple[int, ...]], ...]

_PS_OPERATIONAL = ("Microsoft-Windows-PowerShell/Operational", "PowerShellCore/Operational")

#: Windows categories: (channel, EventIDs) pairs. Sysmon EventIDs from Sysmon's schema.
_WINDOWS_CATEGORIES: dict[str, EventFilter] = {
    "process_creation": ((SYSMON_CHANNEL, (1,)),),
    "file_change": ((SYSMON_CHANNEL, (2,)),),
    "network_connection": ((SYSMON_CHANNEL, (3,)),),
    "sysmon_status": ((SYSMON_CHANNEL, (4, 16)),),
    "process_termination": ((SYSMON_CHANNEL, (5,)),),
    "driver_load": ((SYSMON_CHANNEL, (6,)),),
    "image_load": ((SYSMON_CHANNEL, (7,)),),
    "create_remote_thread": ((SYSMON_CHANNEL, (8,)),),
    "raw_access_thread": ((SYSMON_CHANNEL, (9,)),),
    "raw_access_read": ((SYSMON_CHANNEL, (9,)),),
    "process_access": ((SYSMON_CHANNEL, (10,)),),
    "file_event": ((SYSMON_CHANNEL, (11,)),),
    "registry_add": ((SYSMON_CHANNEL, (12,)),),
    "registry_delete": ((SYSMON_CHANNEL, (12,)),),
    "registry_set": ((SYSMON_CHANNEL, (13,)),),
    "registry_rename": ((SYSMON_CHANNEL, (14,)),),
    "registry_event": ((SYSMON_CHANNEL, (12, 13, 14)),),
    "create_stream_hash": ((SYSMON_CHANNEL, (15,)),),
    "pipe_created": ((SYSMON_CHANNEL, (17, 18)),),
    "wmi_event": ((SYSMON_CHANNEL, (19, 20, 21)),),
    "dns_query": ((SYSMON_CHANNEL, (22,)),),
    "file_delete": ((SYSMON_CHANNEL, (23, 26)),),
    "clipboard_capture": ((SYSMON_CHANNEL, (24,)),),
    "process_tampering": ((SYSMON_CHANNEL, (25,)),),
    "file_block": ((SYSMON_CHANNEL, (27, 28)),),
    "file_executable_detected": ((SYSMON_CHANNEL, (29,)),),
    "sysmon_error": ((SYSMON_CHANNEL, (255,)),),
    "ps_module": tuple((c, (4103,)) for c in _PS_OPERATIONAL),
    "ps_script": tuple((c, (4104,)) for c in _PS_OPERATIONAL),
    "ps_classic_start": (("Windows PowerShell", (400,)),),
    "ps_classic_provider_start": (("Windows PowerShell", (600,)),),
    "ps_classic_script": (("Windows PowerShell", (800,)),),
}

#: Windows categories vigil has no reader for, and why.
_WINDOWS_CATEGORY_REASONS: dict[str, str] = {
    "file_access": "needs the Microsoft-Windows-Kernel-File ETW provider, which no vigil reader produces",
    "file_rename": "needs the Microsoft-Windows-Kernel-File ETW provider, which no vigil reader produces",
}

#: Services SigmaHQ uses that pySigma's channel table lacks.
_EXTRA_WINDOWS_SERVICES: dict[str, str | list[str]] = {
    "smbserver-connectivity": "Microsoft-Windows-SMBServer/Connectivity",
    "smbclient-connectivity": "Microsoft-Windows-SmbClient/Connectivity",
    "iis": "Microsoft-IIS-Logging/Logs",
}

#: Linux categories: vigil's agent emits these Sysmon-for-Linux events (design.md, Event model).
_LINUX_CATEGORIES: dict[str, tuple[int, ...]] = {
    "process_creation": (1,),
    "network_connection": (3,),
    "sysmon_status": (4, 16),
    "process_termination": (5,),
    "driver_load": (6,),
    "raw_access_read": (9,),
    "file_event": (11,),
    "file_create": (11,),
    "dns_query": (22,),
    "dns": (22,),
    "file_delete": (23,),
}

#: Linux services whose records are text lines (syslog, auth log, daemon logs).
_LINUX_SYSLOG_SERVICES = frozenset(
    {"syslog", "auth", "sshd", "sudo", "cron", "vsftpd", "clamav", "guacamole", "modsecurity"}
)


@dataclass(frozen=True, slots=True)
class LogSourceMapping:
    """Where a log source's events are: the RuleIR ``events`` filter and who produces them."""

    events: EventFilter
    producer: Producer


def _windows_service(service: str) -> EventFilter | None:
    channels = _EXTRA_WINDOWS_SERVICES.get(service) or windows_logsource_mapping.get(service)
    if channels is None:
        return None
    if isinstance(channels, str):
        channels = [channels]
    return tuple((c, ()) for c in channels)


def _describe(ls: SigmaLogSource) -> str:
    parts = [
        f"{k}: {v}"
        for k, v in (("product", ls.product), ("category", ls.category), ("service", ls.service))
        if v
    ]
    return "{" + ", ".join(parts) + "}"


def map_logsource(ls: SigmaLogSource) -> LogSourceMapping:
    """Map a Sigma log source to the events it describes, or raise :class:`UnsupportedLogSource`."""
    product, category, service = ls.product, ls.category, ls.service
    if product == "windows" or (product is None and category in _WINDOWS_CATEGORIES and service is None):
        return _map_windows(ls)
    if product == "linux":
        return _map_linux(ls)
    raise UnsupportedLogSource(
        f"log source {_describe(ls)}: vigil reads Windows event logs and Linux events only"
    )


def _map_windows(ls: SigmaLogSource) -> LogSourceMapping:
    category, service = ls.category, ls.service
    if category is not None:
        reason = _WINDOWS_CATEGORY_REASONS.get(category)
        if reason is not None:
            raise UnsupportedLogSource(f"log source {_describe(ls)}: category {category} {reason}")
        events = _WINDOWS_CATEGORIES.get(category)
        if events is None:
            raise UnsupportedLogSource(f"log source {_describe(ls)}: unknown Windows category {category!r}")
        if service is not None:
            by_service = _windows_service(service)
            if by_service is not None:
                wanted = {c for c, _ in by_service}
                events = tuple((c, ids) for c, ids in events if c in wanted) or events
        return LogSourceMapping(events, "scan")
    if service is not None:
        events = _windows_service(service)
        if events is None:
            raise UnsupportedLogSource(
                f"log source {_describe(ls)}: no known event log channel for service {service!r}"
            )
        return LogSourceMapping(events, "scan")
    # product: windows alone: every Windows event.
    return LogSourceMapping((), "scan")


def _map_linux(ls: SigmaLogSource) -> LogSourceMapping:
    category, service = ls.category, ls.service
    if category is not None:
        ids = _LINUX_CATEGORIES.get(category)
        if ids is None:
            raise UnsupportedLogSource(
                f"log source {_describe(ls)}: vigil's Linux events have no {category!r} "
                f"(it produces {', '.join(sorted(_LINUX_CATEGORIES))})"
            )
        return LogSourceMapping(((LINUX_SYSMON_CHANNEL, ids),), "live")
    if service == "auditd":
        return LogSourceMapping(((AUDIT_CHANNEL, ()),), "scan")
    if service is None or service in _LINUX_SYSLOG_SERVICES:
        return LogSourceMapping(((SYSLOG_CHANNEL, ()),), "scan")
    raise UnsupportedLogSource(f"log source {_describe(ls)}: unknown Linux service {service!r}")
