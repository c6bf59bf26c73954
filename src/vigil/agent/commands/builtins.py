"""The agent's built-in response commands (WHIDS §4.11, for Linux).

Each built-in validates its arguments and raises :class:`CommandError` with a message naming the
bad argument; it returns a JSON-serialisable value that the executor puts in the result's ``json``
field. File-system walkers never follow symbolic links and stop at :data:`MAX_ENTRIES` so that a
command aimed at ``/`` cannot exhaust the agent's memory.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat as stat_module
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import re2

__all__ = ["BUILTINS", "MAX_ENTRIES", "CommandContext", "CommandError"]

MAX_ENTRIES = 100_000


class CommandError(Exception):
    """A built-in refused its arguments or failed; the message is shown to the responder."""


@dataclass
class CommandContext:
    """What built-ins may call into; the daemon fills in what this agent has."""

    agent_pid: int = field(default_factory=os.getpid)
    processes: Callable[[], list[dict[str, Any]]] | None = None
    report: Callable[[], dict[str, Any]] | None = None
    contain: Callable[[], str] | None = None
    uncontain: Callable[[], str] | None = None
    protected_pids: Callable[[], set[int]] = field(default_factory=lambda: set)


Builtin = Callable[[CommandContext, list[str]], Any]


def _one_path(name: str, args: list[str]) -> Path:
    if len(args) != 1:
        raise CommandError(f"{name}: expected one absolute path, got {len(args)} arguments")
    return _absolute(name, args[0])


def _absolute(name: str, raw: str) -> Path:
    if "\x00" in raw:
        raise CommandError(f"{name}: path contains a NUL byte")
    path = Path(raw)
    if not path.is_absolute():
        raise CommandError(f"{name}: path must be absolute, got {raw!r}")
    return path


def _dir_and_regex(name: str, args: list[str]) -> tuple[Path, Any]:
    if len(args) != 2:
        raise CommandError(f"{name}: expected DIRECTORY REGEX, got {len(args)} arguments")
    root = _absolute(name, args[0])
    if not root.is_dir():
        raise CommandError(f"{name}: {root} is not a directory")
    try:
        return root, re2.compile(args[1])
    except re2.error as exc:
        raise CommandError(f"{name}: invalid regex {args[1]!r}: {exc}") from exc


def _file_type(mode: int) -> str:
    if stat_module.S_ISDIR(mode):
        return "dir"
    if stat_module.S_ISLNK(mode):
        return "symlink"
    if stat_module.S_ISREG(mode):
        return "file"
    return "special"


def _stat_entry(path: Path) -> dict[str, Any]:
    st = path.lstat()
    return {
        "dir": str(path.parent),
        "name": path.name,
        "size": st.st_size,
        "mode": stat_module.filemode(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "modtime": datetime.fromtimestamp(st.st_mtime, UTC).isoformat(),
        "type": _file_type(st.st_mode),
    }


def _hashes(path: Path) -> dict[str, str]:
    digests = {name: hashlib.new(name) for name in ("md5", "sha1", "sha256", "sha512")}
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            for digest in digests.values():
                digest.update(block)
    return {name: digest.hexdigest() for name, digest in digests.items()}


def _hash_entry(path: Path) -> dict[str, Any]:
    entry = _stat_entry(path)
    try:
        entry["hashes"] = _hashes(path)
        entry["error"] = ""
    except OSError as exc:
        entry["hashes"] = {}
        entry["error"] = str(exc)
    return entry


def _walk_files(root: Path) -> Iterator[Path]:
    count = 0
    for directory, dirs, files in os.walk(root, followlinks=False, onerror=lambda _: None):
        for name in files:
            count += 1
            if count > MAX_ENTRIES:
                raise CommandError(f"more than {MAX_ENTRIES} files under {root}: narrow the search")
            yield Path(directory, name)
        dirs.sort()


# -- the commands -------------------------------------------------------------------------------


def cmd_hash(ctx: CommandContext, args: list[str]) -> Any:
    path = _one_path("hash", args)
    if not path.is_file():
        raise CommandError(f"hash: {path} is not a regular file")
    return _hash_entry(path)


def cmd_stat(ctx: CommandContext, args: list[str]) -> Any:
    path = _one_path("stat", args)
    try:
        return _stat_entry(path)
    except OSError as exc:
        raise CommandError(f"stat: {exc}") from exc


def cmd_ls(ctx: CommandContext, args: list[str]) -> Any:
    path = _one_path("ls", args)
    if not path.is_dir():
        raise CommandError(f"ls: {path} is not a directory")
    entries = []
    for child in sorted(path.iterdir())[:MAX_ENTRIES]:
        try:
            entries.append(_stat_entry(child))
        except OSError:
            continue
    return entries


def cmd_walk(ctx: CommandContext, args: list[str]) -> Any:
    root = _one_path("walk", args)
    if not root.is_dir():
        raise CommandError(f"walk: {root} is not a directory")
    out: list[dict[str, Any]] = []
    count = 0
    for directory, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        count += len(dirs) + len(files)
        if count > MAX_ENTRIES:
            raise CommandError(f"walk: more than {MAX_ENTRIES} entries under {root}: walk a subdirectory")
        out.append({"dir": directory, "dirs": list(dirs), "files": sorted(files), "err": ""})
    return out


def cmd_find(ctx: CommandContext, args: list[str]) -> Any:
    root, pattern = _dir_and_regex("find", args)
    return [_stat_entry(p) for p in _walk_files(root) if pattern.search(str(p))]


def cmd_rexhash(ctx: CommandContext, args: list[str]) -> Any:
    root, pattern = _dir_and_regex("rexhash", args)
    return [_hash_entry(p) for p in _walk_files(root) if pattern.search(str(p)) and p.is_file()]


def cmd_terminate(ctx: CommandContext, args: list[str]) -> Any:
    if len(args) != 1 or not re.fullmatch(r"[0-9]{1,10}", args[0]):
        raise CommandError(f"terminate: expected one PID (a decimal number), got {args!r}")
    pid = int(args[0])
    if pid <= 1 or pid == ctx.agent_pid or pid in ctx.protected_pids():
        raise CommandError(f"terminate: refusing to terminate protected process {pid}")
    import signal

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError as exc:
        raise CommandError(f"terminate: no process {pid}") from exc
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        os.close(fd)
    return {"pid": pid, "terminated": True}


def _via(name: str, provider: Callable[[], Any] | None, args: list[str]) -> Any:
    if args:
        raise CommandError(f"{name}: takes no arguments, got {args!r}")
    if provider is None:
        raise CommandError(f"{name}: not available on this agent")
    return provider()


def cmd_processes(ctx: CommandContext, args: list[str]) -> Any:
    return _via("processes", ctx.processes, args)


def cmd_report(ctx: CommandContext, args: list[str]) -> Any:
    return _via("report", ctx.report, args)


def cmd_contain(ctx: CommandContext, args: list[str]) -> Any:
    return {"message": _via("contain", ctx.contain, args)}


def cmd_uncontain(ctx: CommandContext, args: list[str]) -> Any:
    return {"message": _via("uncontain", ctx.uncontain, args)}


def cmd_modules(ctx: CommandContext, args: list[str]) -> Any:
    """Shared objects mapped by running processes (Linux's counterpart of loaded modules)."""
    if args:
        raise CommandError(f"modules: takes no arguments, got {args!r}")
    modules: dict[str, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "maps").read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith("/") and ".so" in parts[5]:
                modules.setdefault(parts[5], set()).add(int(entry.name))
    return [{"path": path, "pids": sorted(pids)} for path, pids in sorted(modules.items())]


def cmd_drivers(ctx: CommandContext, args: list[str]) -> Any:
    """Kernel modules (drivers on Windows); says so when the kernel has no module support."""
    if args:
        raise CommandError(f"drivers: takes no arguments, got {args!r}")
    modules_file = Path("/proc/modules")
    if not modules_file.exists():
        return {"modules": [], "note": "this kernel has no loadable module support (/proc/modules absent)"}
    out = []
    for line in modules_file.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            out.append({"name": parts[0], "size": int(parts[1]), "instances": int(parts[2])})
    return {"modules": out}


BUILTINS: dict[str, tuple[Builtin, str]] = {
    "contain": (
        cmd_contain,
        "isolate the host: only loopback, established flows and the manager stay reachable",
    ),
    "uncontain": (cmd_uncontain, "remove host isolation"),
    "terminate": (cmd_terminate, "terminate a process by PID (never the agent): terminate 1337"),
    "hash": (cmd_hash, "hash a file (md5, sha1, sha256, sha512): hash /usr/bin/ls"),
    "rexhash": (cmd_rexhash, "hash files whose path matches a regex: rexhash /tmp '\\.sh$'"),
    "stat": (cmd_stat, "stat a file or directory: stat /etc/passwd"),
    "ls": (cmd_ls, "list a directory: ls /tmp"),
    "walk": (cmd_walk, "recursively list a directory: walk /etc/cron.d"),
    "find": (cmd_find, "find files whose path matches a regex: find /home 'authorized_keys$'"),
    "report": (cmd_report, "full incident-response report of the host"),
    "processes": (cmd_processes, "processes tracked by the agent"),
    "modules": (cmd_modules, "shared objects mapped by running processes"),
    "drivers": (cmd_drivers, "kernel modules"),
}
