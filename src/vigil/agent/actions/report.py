"""The incident-response report (WHIDS §4.7 adapted to Linux) and its ``brief`` variant.

``build_report`` returns a JSON-ready dict::

    {"processes": {guid-or-pid: {...}}, "modules": [...], "kernel-modules": {...},
     "connections": [...], "dns": [...], "commands": [...],
     "start-timestamp": ..., "stop-timestamp": ...}

Processes come from the caller's tracker when given (``processes``) and are completed from
/proc; otherwise /proc is scanned. DNS resolutions and last files accessed are only known to the
pipeline, so the caller passes them. ``brief`` runs no commands (as WHIDS' light report).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vigil.agent.actions._inventory import (
    HashCache,
    ancestors,
    connections,
    kernel_modules,
    scan_processes,
    shared_objects,
)
from vigil.agent.actions.errors import InvalidInput

logger = logging.getLogger(__name__)

DEFAULT_OSQUERY_TABLES = (
    "processes",
    "listening_ports",
    "process_open_sockets",
    "crontab",
    "users",
    "kernel_modules",
)
_MAX_OUTPUT = 4 << 20
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class ReportCommand:
    """A command whose output goes into the report (WHIDS ``[[reporting.commands]]``)."""

    name: str
    args: Sequence[str] = ()
    description: str = ""
    expect_json: bool = False
    timeout: float | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise InvalidInput(
                f"reporting.commands: command name must be a non-empty string, got {self.name!r}"
            )
        if isinstance(self.args, str) or not all(isinstance(a, str) for a in self.args):
            raise InvalidInput(f"reporting.commands[{self.name}]: args must be a list of strings")


@dataclass
class ReportOptions:
    """What goes into a report; ``osquery_tables`` run only when osqueryi is installed."""

    commands: Sequence[ReportCommand] = ()
    osquery_tables: Sequence[str] = DEFAULT_OSQUERY_TABLES
    timeout: float = 60.0
    hash_cache: HashCache = field(default_factory=HashCache)

    def __post_init__(self) -> None:
        for table in self.osquery_tables:
            if not isinstance(table, str) or not _TABLE.match(table):
                raise InvalidInput(f"reporting.osquery.tables: {table!r} is not an osquery table name")


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


def run_command(cmd: ReportCommand, default_timeout: float) -> dict[str, Any]:
    """Run one report command (argument list, no shell); its failure is recorded, not raised."""
    timeout = cmd.timeout or default_timeout
    entry: dict[str, Any] = {
        "description": cmd.description,
        "name": cmd.name,
        "args": list(cmd.args),
        "expect-json": cmd.expect_json,
        "stdout": None,
        "stderr": "",
        "error": "",
        "timestamp": _iso(time.time()),
        "timeout": timeout,
    }
    exe = shutil.which(cmd.name)
    if exe is None:
        entry["error"] = f"{cmd.name}: not installed"
        return entry
    try:
        proc = subprocess.run([exe, *cmd.args], capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        entry["error"] = f"timed out after {timeout}s"
        return entry
    except OSError as exc:
        entry["error"] = str(exc)
        return entry
    out = proc.stdout[:_MAX_OUTPUT].decode("utf-8", "replace")
    entry["stderr"] = proc.stderr[:_MAX_OUTPUT].decode("utf-8", "replace")
    if proc.returncode != 0:
        entry["error"] = f"exit status {proc.returncode}"
    if cmd.expect_json:
        try:
            entry["stdout"] = json.loads(out)
        except ValueError as exc:
            entry["stdout"] = out
            entry["error"] = entry["error"] or f"output is not JSON: {exc}"
    else:
        entry["stdout"] = out
    return entry


def _process_record(
    pid: int, table: Mapping[int, Any], opts: ReportOptions, tracked: Any | None
) -> dict[str, Any]:
    p = table[pid]
    parent = table.get(p.ppid)
    objects = shared_objects(pid)
    return {
        "pid": pid,
        "ppid": p.ppid,
        "process-guid": getattr(tracked, "guid", "") if tracked is not None else "",
        "image": p.image,
        "command-line": p.command_line,
        "cwd": p.cwd,
        "user": p.user,
        "uid": p.uid,
        "parent-image": parent.image if parent else "",
        "parent-command-line": parent.command_line if parent else "",
        "ancestors": ancestors(pid, dict(table)),
        "hashes": (getattr(tracked, "hashes", None) or opts.hash_cache.hashes(f"/proc/{pid}/exe")),
        "modules": objects,
    }


def build_report(
    *,
    brief: bool = False,
    options: ReportOptions | None = None,
    processes: Iterable[Any] | None = None,
    dns: Sequence[Mapping[str, Any]] = (),
    last_files: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The IR report; ``processes`` are tracker records (pid, guid, hashes ... ) to merge in."""
    opts = options or ReportOptions()
    start = time.time()
    table = scan_processes()
    tracked = {p.pid: p for p in processes or ()}
    procs: dict[str, Any] = {}
    module_users: dict[str, int] = {}
    for pid in sorted(table):
        rec = _process_record(pid, table, opts, tracked.get(pid))
        if last_files is not None:
            rec["last-accessed"] = list(last_files.get(rec["process-guid"] or str(pid), ()))
        procs[rec["process-guid"] or str(pid)] = rec
        for so in rec["modules"]:
            module_users[so] = module_users.get(so, 0) + 1
    for pid, t in tracked.items():
        if pid not in table:  # tracked but gone: keep what the tracker knew
            key = getattr(t, "guid", "") or str(pid)
            procs[key] = {
                "pid": pid,
                "process-guid": getattr(t, "guid", ""),
                "image": getattr(t, "image", ""),
                "command-line": getattr(t, "command_line", ""),
                "hashes": getattr(t, "hashes", {}),
                "terminated": True,
            }
    modules = [
        {"image": so, "hashes": opts.hash_cache.hashes(so), "load-count": n}
        for so, n in sorted(module_users.items())
    ]
    report: dict[str, Any] = {
        "processes": procs,
        "modules": modules,
        "kernel-modules": kernel_modules(),
        "connections": connections(),
        "dns": [dict(d) for d in dns],
        "commands": [],
        "start-timestamp": _iso(start),
    }
    if not brief:
        cmds: list[ReportCommand] = []
        if shutil.which("osqueryi"):
            cmds += [
                ReportCommand("osqueryi", ("--json", "-A", t), f"osquery {t}", True)
                for t in opts.osquery_tables
            ]
        else:
            report["commands"].append(
                {"name": "osqueryi", "error": "osqueryi: not installed", "stdout": None}
            )
        cmds += list(opts.commands)
        report["commands"] += [run_command(c, opts.timeout) for c in cmds]
    report["stop-timestamp"] = _iso(time.time())
    return report
