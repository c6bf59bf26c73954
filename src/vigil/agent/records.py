"""Raw records -> Sysmon-shaped events, keeping the process tracker current.

One method per record type. Each returns the event and the process it is about (or None when
the record produces no event, e.g. a failed exec).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from vigil.agent.guid import ZERO_GUID
from vigil.agent.sources.base import RawRecord
from vigil.agent.sources.netinv import socket_of_fd
from vigil.agent.sysmon import (
    AGENT_HEALTH,
    DNS_QUERY,
    DRIVER_LOAD,
    FILE_CREATE,
    FILE_DELETE,
    KERNEL_MODULE_UNLOAD,
    NETWORK_CONNECT,
    PROCESS_CREATE,
    PROCESS_TERMINATE,
    UNKNOWN,
    EventFactory,
    format_hashes,
    utc_time,
)
from vigil.agent.tracker import ProcessInfo, ProcessTracker, user_name

logger = logging.getLogger(__name__)

Built = tuple[dict[str, Any], ProcessInfo | None]

DNS_TYPES = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    65: "HTTPS",
}
ERRNO_NAMES = {
    1: "EPERM", 13: "EACCES", 38: "ENOSYS", 101: "ENETUNREACH", 110: "ETIMEDOUT", 111: "ECONNREFUSED",
    113: "EHOSTUNREACH", 115: "EINPROGRESS",
}  # fmt: skip


class EventBuilder:
    def __init__(self, factory: EventFactory, tracker: ProcessTracker) -> None:
        self.factory = factory
        self.tracker = tracker
        self.agent_pid = os.getpid()

    def build(self, rec: RawRecord) -> Built | None:
        method = getattr(self, "_" + str(rec.get("type")), None)
        if method is None:
            return None
        result: Built | None = method(rec)
        return result

    # -- helpers ---------------------------------------------------------------------------------
    def _process_for(self, rec: RawRecord) -> ProcessInfo | None:
        """The tracked process of a record, created from the record when it is unknown."""
        pid = rec.get("pid", -1)
        if pid is None or pid <= 0:
            return None
        info = self.tracker.find(pid)
        if info is None:
            info = self.tracker.on_exec(pid, rec if rec.get("exe") else None)
        return info

    def _proc_fields(self, info: ProcessInfo | None, pid: int | None = None) -> dict[str, Any]:
        if info is None:
            return {
                "ProcessGuid": ZERO_GUID,
                "ProcessId": pid if pid is not None else UNKNOWN,
                "Image": UNKNOWN,
            }
        return {"ProcessGuid": info.guid, "ProcessId": info.pid, "Image": info.image}

    def _sysmon(self, eid: int, data: dict[str, Any], rec: RawRecord) -> dict[str, Any]:
        return self.factory.sysmon(eid, data, pid=self.agent_pid, ts_ns=rec.get("ts_ns") or time.time_ns())

    # -- record types ----------------------------------------------------------------------------
    def _exec(self, rec: RawRecord) -> Built | None:
        pid = rec["pid"]
        info = self.tracker.on_exec(pid, rec if rec.get("source") == "audit" else None, rec.get("mono_ns"))
        parent = self.tracker.parent_of(info)
        data = {
            **self._proc_fields(info),
            "FileVersion": UNKNOWN,
            "Description": UNKNOWN,
            "Product": UNKNOWN,
            "Company": UNKNOWN,
            "OriginalFileName": UNKNOWN,
            "CommandLine": info.command_line,
            "CurrentDirectory": info.cwd,
            "User": info.user,
            "LogonGuid": ZERO_GUID,
            "LogonId": info.auid if 0 <= info.auid < 0xFFFFFFFF else UNKNOWN,
            "TerminalSessionId": UNKNOWN,
            "IntegrityLevel": "no level",
            "Hashes": format_hashes(info.hashes),
            "ParentProcessGuid": parent.guid if parent else ZERO_GUID,
            "ParentProcessId": info.ppid,
            "ParentImage": parent.image if parent else UNKNOWN,
            "ParentCommandLine": parent.command_line if parent else UNKNOWN,
            "ParentUser": parent.user if parent else UNKNOWN,
        }
        return self._sysmon(PROCESS_CREATE, data, rec), info

    def _exit(self, rec: RawRecord) -> Built | None:
        info = self.tracker.on_exit(rec["pid"], rec.get("status"))
        if info is None or info.forked_only:
            return None  # a fork that never exec'd had no ProcessCreate: no ProcessTerminate either
        data = {**self._proc_fields(info), "User": info.user}
        return self._sysmon(PROCESS_TERMINATE, data, rec), info

    def _connect(self, rec: RawRecord) -> Built | None:
        info = self._process_for(rec)
        proto, sip, sport = rec.get("proto") or "?", rec.get("saddr") or UNKNOWN, rec.get("sport") or UNKNOWN
        if proto == "?" and rec.get("fd", -1) >= 0:
            entry = socket_of_fd(rec["pid"], rec["fd"])
            if entry is not None:
                proto, sip, sport = entry.proto.rstrip("6"), entry.laddr, str(entry.lport)
        ipv6 = rec.get("family") == "ipv6"
        code = rec.get("exit", 0)
        status = "success" if rec.get("success") else ERRNO_NAMES.get(-code, f"errno {-code}")
        data = {
            **self._proc_fields(info, rec.get("pid")),
            "User": info.user if info else user_name(rec.get("uid", -1)),
            "Protocol": proto,
            "Initiated": "true",
            "SourceIsIpv6": str(ipv6).lower(),
            "SourceIp": sip,
            "SourceHostname": UNKNOWN,
            "SourcePort": sport,
            "SourcePortName": UNKNOWN,
            "DestinationIsIpv6": str(ipv6).lower(),
            "DestinationIp": rec["daddr"],
            "DestinationHostname": UNKNOWN,
            "DestinationPort": rec["dport"],
            "DestinationPortName": UNKNOWN,
            "ConnectStatus": status,
        }
        return self._sysmon(NETWORK_CONNECT, data, rec), info

    def _socket(self, rec: RawRecord) -> Built | None:
        """Inventory fallback for NetworkConnect when audit is not running (polling, lossy)."""
        info = self.tracker.resolve(rec["pid"]) if rec.get("pid", -1) > 0 else None
        ipv6 = rec["proto"].endswith("6")
        data = {
            **self._proc_fields(info, rec.get("pid")),
            "User": info.user if info else user_name(rec.get("uid", -1)),
            "Protocol": rec["proto"].rstrip("6"),
            "Initiated": "true",
            "SourceIsIpv6": str(ipv6).lower(),
            "SourceIp": rec["laddr"],
            "SourceHostname": UNKNOWN,
            "SourcePort": rec["lport"],
            "SourcePortName": UNKNOWN,
            "DestinationIsIpv6": str(ipv6).lower(),
            "DestinationIp": rec["raddr"],
            "DestinationHostname": UNKNOWN,
            "DestinationPort": rec["rport"],
            "DestinationPortName": UNKNOWN,
            "ConnectStatus": rec["state"],
        }
        return self._sysmon(NETWORK_CONNECT, data, rec), info

    def _module(self, rec: RawRecord) -> Built | None:
        info = self._process_for(rec)
        status = (
            "success"
            if rec.get("success")
            else ERRNO_NAMES.get(-rec.get("exit", 0), f"errno {-rec.get('exit', 0)}")
        )
        proc = {
            **self._proc_fields(info, rec.get("pid")),
            "User": info.user if info else user_name(rec.get("uid", -1)),
            "Syscall": rec.get("syscall", UNKNOWN),
            "Status": status,
        }
        if rec.get("syscall") == "delete_module":
            vdata = {**proc, "ImageLoaded": rec.get("name") or UNKNOWN}
            return self.factory.vigil(
                KERNEL_MODULE_UNLOAD, vdata, pid=self.agent_pid, ts_ns=rec.get("ts_ns")
            ), info
        path = rec.get("path")
        hashes: dict[str, str] = {}
        if path:
            found = self.tracker.hash_cache.hash_path(path)
            if found is not None:
                hashes = found[1]
        data = {
            "ImageLoaded": path or UNKNOWN,
            "Hashes": format_hashes(hashes),
            "Signed": "false",
            "Signature": UNKNOWN,
            "SignatureStatus": UNKNOWN,
            **proc,
        }
        return self._sysmon(DRIVER_LOAD, data, rec), info

    def _dns(self, rec: RawRecord) -> Built | None:
        info = self.tracker.resolve(rec["pid"]) if rec.get("pid", -1) > 0 else None
        qtype = rec.get("qtype", 0)
        rcode = rec.get("rcode")
        answers = rec.get("answers") or []
        data = {
            **self._proc_fields(info, rec.get("pid") if rec.get("pid", -1) > 0 else None),
            "QueryName": rec["qname"],
            "QueryType": DNS_TYPES.get(qtype, str(qtype)),
            # Windows DNS status codes as Sysmon writes them: 0, or 9000 + rcode (9003 NXDOMAIN)
            "QueryStatus": UNKNOWN if rcode is None else (0 if rcode == 0 else 9000 + rcode),
            "QueryResults": "".join(f"{a};" for a in answers) if answers else UNKNOWN,
            "User": info.user if info else UNKNOWN,
            "DestinationIp": rec.get("daddr", UNKNOWN),
            "DestinationPort": rec.get("dport", UNKNOWN),
        }
        return self._sysmon(DNS_QUERY, data, rec), info

    def _file_create(self, rec: RawRecord) -> Built | None:
        info = self.tracker.resolve(rec["pid"]) if rec.get("pid", -1) > 0 else None
        ts = rec.get("ts_ns") or time.time_ns()
        data = {
            **self._proc_fields(info, rec.get("pid") if rec.get("pid", -1) > 0 else None),
            "TargetFilename": rec["path"],
            "CreationUtcTime": utc_time(ts),
            "User": info.user if info else UNKNOWN,
        }
        return self._sysmon(FILE_CREATE, data, rec), info

    def _file_delete(self, rec: RawRecord) -> Built | None:
        info = self.tracker.resolve(rec["pid"]) if rec.get("pid", -1) > 0 else None
        data = {
            **self._proc_fields(info, rec.get("pid") if rec.get("pid", -1) > 0 else None),
            "TargetFilename": rec["path"],
            "User": info.user if info else UNKNOWN,
            "Hashes": UNKNOWN,
            "IsExecutable": UNKNOWN,
            "Archived": "false",
        }
        return self._sysmon(FILE_DELETE, data, rec), info

    def _image(self, rec: RawRecord) -> Built | None:
        """fanotify exec image hashes: remembered for the coming exec; no event of their own."""
        self.tracker.note_exec_image(rec["pid"], rec["path"], tuple(rec["key"]), rec["hashes"])
        return None

    def _lost(self, rec: RawRecord) -> Built | None:
        data = {
            "Source": rec.get("source", UNKNOWN),
            "State": "events-lost",
            "Message": f"{rec.get('count', 1)} lost",
        }
        return self.factory.vigil(AGENT_HEALTH, data, pid=self.agent_pid), None

    def _health(self, rec: RawRecord) -> Built | None:
        data = {
            "Source": rec.get("source", UNKNOWN),
            "State": rec.get("state", UNKNOWN),
            "Message": rec.get("message", ""),
        }
        return self.factory.vigil(AGENT_HEALTH, data, pid=self.agent_pid), None
