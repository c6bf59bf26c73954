"""The built-in enrichment hooks (WHIDS §4.4 adapted to Linux).

| hook | events | adds |
|---|---|---|
| `track` | 1 | `Ancestors`, `ParentUser` |
| `image_size` | 1, 6 | `ImageSize` / `ImageLoadedSize` |
| `stats` | 1, 3, 11, 22, 23 | per-process counters; on 11/23 `Count`, `CountByExt`, `Extension`,
  `FrequencyEps` |
| `enrich_any` | 3, 5, 11, 22, 23 | `CommandLine`, `CurrentDirectory`, `ImageHashes`, `ProcessThreatScore` |
"""

from __future__ import annotations

import os

from vigil.agent.enrich.hooks import HookContext, HookRegistry
from vigil.agent.sysmon import (
    DNS_QUERY,
    DRIVER_LOAD,
    FILE_CREATE,
    FILE_DELETE,
    NETWORK_CONNECT,
    PROCESS_CREATE,
    PROCESS_TERMINATE,
    SYSMON_CHANNEL,
    UNKNOWN,
    format_hashes,
)


def register_builtin(reg: HookRegistry) -> None:
    @reg.register("track", SYSMON_CHANNEL, [PROCESS_CREATE])
    def track(data: dict[str, str], ctx: HookContext) -> None:
        info = ctx.process
        if info is None:
            return
        data["Ancestors"] = ctx.tracker.ancestors_field(info)
        parent = ctx.tracker.parent_of(info)
        data.setdefault("ParentUser", parent.user if parent is not None else UNKNOWN)

    @reg.register("image_size", SYSMON_CHANNEL, [PROCESS_CREATE, DRIVER_LOAD])
    def image_size(data: dict[str, str], ctx: HookContext) -> None:
        if "ImageLoaded" in data:
            data["ImageLoadedSize"] = _size(data["ImageLoaded"])
        elif ctx.process is not None and ctx.process.exe_key is not None:
            data["ImageSize"] = str(ctx.process.exe_key[3])
        else:
            data["ImageSize"] = _size(data.get("Image", ""))

    @reg.register(
        "stats", SYSMON_CHANNEL, [PROCESS_CREATE, NETWORK_CONNECT, FILE_CREATE, DNS_QUERY, FILE_DELETE]
    )
    def stats(data: dict[str, str], ctx: HookContext) -> None:
        info = ctx.process
        if info is None:
            return
        eid = int(ctx.record.get("_eid", 0))
        if eid == PROCESS_CREATE:
            parent = ctx.tracker.parent_of(info)
            if parent is not None:
                parent.count("create_process")
        elif eid == NETWORK_CONNECT:
            info.count("connections")
            dest = f"{data.get('DestinationIp', '?')}:{data.get('DestinationPort', '?')}"
            conns = info.file_stats.setdefault("connections", {})
            conns[dest] = conns.get(dest, 0) + 1
        elif eid == DNS_QUERY:
            info.count("dns_queries")
            resolved = info.file_stats.setdefault("resolved", {})  # ip -> name (WHIDS hookStats)
            for item in data.get("QueryResults", "").split(";"):
                if item and item != UNKNOWN and not item.startswith("type:"):
                    resolved[item] = data.get("QueryName", "")
        elif eid in (FILE_CREATE, FILE_DELETE):
            kind = "file_create" if eid == FILE_CREATE else "file_delete"
            total = info.count(kind)
            ext = os.path.splitext(data.get("TargetFilename", ""))[1].lower()
            by_ext = info.file_stats.setdefault(f"{kind}_by_ext", {})
            by_ext[ext] = by_ext.get(ext, 0) + 1
            first = info.file_stats.setdefault(f"first_{kind}_ns", ctx.ts_ns)
            secs = (ctx.ts_ns - first) / 1e9
            data["Count"] = str(total)
            data["CountByExt"] = str(by_ext[ext])
            data["Extension"] = ext or UNKNOWN
            data["FrequencyEps"] = f"{total / secs:.2f}" if secs > 0 else "0"
            last = info.file_stats.setdefault("last_accessed", [])
            last.append(data.get("TargetFilename", ""))
            del last[:-50]

    @reg.register(
        "enrich_any",
        SYSMON_CHANNEL,
        [NETWORK_CONNECT, PROCESS_TERMINATE, FILE_CREATE, DNS_QUERY, FILE_DELETE],
    )
    def enrich_any(data: dict[str, str], ctx: HookContext) -> None:
        info = ctx.process
        if info is None:
            data.setdefault("CommandLine", "?")
            data["ImageHashes"] = "?"
            data["ProcessThreatScore"] = "-1"
            return
        data.setdefault("CommandLine", info.command_line)
        data.setdefault("CurrentDirectory", info.cwd)
        data["ImageHashes"] = format_hashes(info.hashes) if info.hashes else "?"
        data["ProcessThreatScore"] = str(info.threat_score)


def _size(path: str) -> str:
    try:
        return str(os.stat(path).st_size)
    except OSError:
        return "?"
