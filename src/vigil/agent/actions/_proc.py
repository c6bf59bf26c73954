"""Small readers of /proc/PID used by several actions."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ProcStat:
    """Fields of /proc/PID/stat that the guards and the core file need."""

    pid: int
    comm: str
    state: str
    ppid: int
    pgrp: int
    session: int
    flags: int
    nice: int
    start_ticks: int


def read_stat(pid: int, proc: str = "/proc") -> ProcStat:
    """Parse /proc/PID/stat; raises FileNotFoundError/ProcessLookupError when the pid is gone."""
    with open(f"{proc}/{pid}/stat", "rb") as f:
        raw = f.read().decode("utf-8", "replace")
    head, _, tail = raw.rpartition(")")
    comm = head.split("(", 1)[1] if "(" in head else ""
    fields = tail.split()
    # fields[0] is field 3 (state) of proc(5)
    return ProcStat(
        pid=pid,
        comm=comm,
        state=fields[0],
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        session=int(fields[3]),
        flags=int(fields[6]),
        nice=int(fields[16]),
        start_ticks=int(fields[19]),
    )


def read_cmdline(pid: int, proc: str = "/proc") -> list[str]:
    """argv of a process (empty for kernel threads and zombies)."""
    with open(f"{proc}/{pid}/cmdline", "rb") as f:
        raw = f.read()
    return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0")[:-1]] if raw else []


def read_status_ids(pid: int, proc: str = "/proc") -> tuple[int, int]:
    """Real (uid, gid) from /proc/PID/status."""
    uid = gid = -1
    with open(f"{proc}/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                uid = int(line.split()[1])
            elif line.startswith("Gid:"):
                gid = int(line.split()[1])
    return uid, gid


def exe_path(pid: int, proc: str = "/proc") -> str:
    """Target of /proc/PID/exe ('' when unreadable, e.g. kernel threads)."""
    try:
        return os.readlink(f"{proc}/{pid}/exe")
    except OSError:
        return ""


def sha256_fd(fd: int, max_bytes: int | None = None) -> str:
    """sha256 of an open file read with pread (the file offset is left alone)."""
    h = hashlib.sha256()
    off = 0
    while True:
        chunk = os.pread(fd, _HASH_CHUNK, off)
        if not chunk:
            return h.hexdigest()
        h.update(chunk)
        off += len(chunk)
        if max_bytes is not None and off > max_bytes:
            raise ValueError(f"file larger than {max_bytes} bytes")


def sha256_path(path: str) -> str:
    """sha256 of a file by path (works on /proc/PID/exe of a deleted binary)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return sha256_fd(fd)
    finally:
        os.close(fd)


def is_descendant(pid: int, ancestor: int, proc: str = "/proc") -> bool:
    """True when ``ancestor`` appears in the parent chain of ``pid`` (bounded walk)."""
    seen = 0
    cur = pid
    while cur > 1 and seen < 4096:
        try:
            cur = read_stat(cur, proc).ppid
        except (OSError, IndexError, ValueError):
            return False
        if cur == ancestor:
            return True
        seen += 1
    return False
