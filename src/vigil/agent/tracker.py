"""Live process table: who runs what, started by whom, from where, with which binary.

Seeded from /proc at start so processes older than the agent are known; kept current by fork,
exec and exit records. Exited processes stay for a grace period (and as long as a tracked child
still names them as parent) so late events and ancestry still resolve.
"""

from __future__ import annotations

import logging
import os
import pwd
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vigil.agent.guid import ZERO_GUID, process_guid, start_ticks_of, ticks_from_monotonic_ns
from vigil.agent.hashing import HashCache

logger = logging.getLogger(__name__)

_BOOT_TIME = 0.0
try:
    with open("/proc/stat") as _f:
        for _line in _f:
            if _line.startswith("btime "):
                _BOOT_TIME = float(_line.split()[1])
except OSError:
    pass
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class ProcessInfo:
    """One process as the agent knows it; `counters` hold per-process activity statistics."""

    pid: int
    ppid: int
    guid: str
    image: str = "-"
    command_line: str = "-"
    cwd: str = "-"
    user: str = "-"
    uid: int = -1
    start_ticks: int = 0
    start_time: float = 0.0
    hashes: dict[str, str] = field(default_factory=dict)
    exe_deleted: bool = False
    exe_key: tuple[int, int, int, int] | None = None
    auid: int = -1
    counters: dict[str, int] = field(default_factory=dict)
    signatures: dict[str, int] = field(default_factory=dict)
    threat_score: int = 0
    execed: bool = False
    terminated: bool = False
    exit_code: int | None = None
    time_terminated: float | None = None
    file_stats: dict[str, Any] = field(default_factory=dict)
    excluded: bool | None = None  # the agent itself or one of its descendants (decided once)
    from_fork: bool = False  # known from a fork record only: an exec may still be on its way
    forked_only: bool = False  # created by fork and never exec'd (no ProcessCreate was emitted)
    hash_requested: bool = False  # a background hash of the image was asked for (seeded processes)

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")

    def count(self, name: str, n: int = 1) -> int:
        self.counters[name] = self.counters.get(name, 0) + n
        return self.counters[name]


_user_cache: dict[int, str] = {}


def user_name(uid: int) -> str:
    if uid < 0:
        return "-"
    name = _user_cache.get(uid)
    if name is None:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        _user_cache[uid] = name
    return name


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def command_line_of(argv: list[str]) -> str:
    """Sysmon for Linux joins argv with single spaces."""
    return " ".join(argv) if argv else "-"


class ProcessTracker:
    """The process table. Mutated by the sensor's pipeline thread; readable from any thread."""

    def __init__(
        self, *, hash_cache: HashCache | None = None, grace_s: float = 10.0, hash_images: bool = True
    ) -> None:
        self.hash_cache = hash_cache or HashCache()
        self.grace_s = grace_s
        self.hash_images = hash_images
        self._lock = threading.RLock()
        self._live: dict[int, ProcessInfo] = {}
        self._guids: dict[str, ProcessInfo] = {}
        self._dead: list[ProcessInfo] = []  # oldest first, for expiry
        self._dead_by_pid: dict[int, ProcessInfo] = {}  # the latest exited process of each pid
        # pid -> [(path, stat key, hashes)] of files fanotify saw it exec, consumed by on_exec
        self._exec_images: dict[int, list[tuple[str, tuple[int, int, int, int], dict[str, str]]]] = {}
        self.hash_origins = {"fanotify": 0, "proc_exe": 0, "path": 0, "none": 0}

    # -- reading ---------------------------------------------------------------------------------
    def get(self, pid: int) -> ProcessInfo | None:
        with self._lock:
            return self._live.get(pid)

    def get_by_guid(self, guid: str) -> ProcessInfo | None:
        with self._lock:
            return self._guids.get(guid)

    def snapshot(self) -> list[ProcessInfo]:
        with self._lock:
            return list(self._live.values())

    def parent_of(self, info: ProcessInfo) -> ProcessInfo | None:
        with self._lock:
            parent = self._live.get(info.ppid)
            if parent is not None and parent.start_ticks <= info.start_ticks:
                return parent
            dead = self._dead_by_pid.get(info.ppid)  # exited parent still in its grace period
            return dead if dead is not None else parent

    def ancestry(self, pid: int) -> list[ProcessInfo]:
        """Parent first, up to the root (pid 1 or the first unknown parent)."""
        out: list[ProcessInfo] = []
        with self._lock:
            info = self._live.get(pid)
            seen = {pid}
            while info is not None and info.ppid > 0 and info.ppid not in seen:
                seen.add(info.ppid)
                info = self.parent_of(info)
                if info is not None:
                    out.append(info)
        return out

    def ancestors_field(self, info: ProcessInfo) -> str:
        """WHIDS `Ancestors`: images from the root down to the parent, `|`-separated."""
        chain = []
        with self._lock:
            cur: ProcessInfo | None = info
            seen = {info.pid}
            while cur is not None and cur.ppid > 0 and cur.ppid not in seen:
                seen.add(cur.ppid)
                cur = self.parent_of(cur)
                if cur is not None:
                    chain.append(cur.image)
        return "|".join(reversed(chain))

    # -- building --------------------------------------------------------------------------------
    def seed(self) -> int:
        """Load every process in /proc; returns how many were added."""
        n = 0
        for name in os.listdir("/proc"):
            if name.isdigit():
                info = self._from_proc(int(name))
                if info is not None:
                    self._add(info)
                    n += 1
        return n

    def _new(self, pid: int, ppid: int, start_ticks: int) -> ProcessInfo:
        return ProcessInfo(
            pid=pid,
            ppid=ppid,
            guid=process_guid(pid, start_ticks),
            start_ticks=start_ticks,
            start_time=_BOOT_TIME + start_ticks / _TICKS,
        )

    def _from_proc(self, pid: int) -> ProcessInfo | None:
        """A ProcessInfo from /proc/PID, or None when the process is gone."""
        stat = _read(f"/proc/{pid}/stat")
        status = _read(f"/proc/{pid}/status")
        if stat is None or status is None:
            return None
        rest = stat[stat.rfind(b")") + 2 :].split()
        try:
            ppid, start = int(rest[1]), int(rest[19])
        except (IndexError, ValueError):
            return None
        info = self._new(pid, ppid, start)
        for line in status.splitlines():
            if line.startswith(b"Uid:"):
                info.uid = int(line.split()[1])
                break
        info.user = user_name(info.uid)
        self._fill_from_proc(info)
        return info

    def _fill_from_proc(self, info: ProcessInfo) -> None:
        pid = info.pid
        exe = _readlink(f"/proc/{pid}/exe")
        if exe is not None:
            info.exe_deleted = exe.endswith(" (deleted)")
            info.image = exe.removesuffix(" (deleted)")
        raw = _read(f"/proc/{pid}/cmdline")
        if raw:
            args = [a.decode(errors="surrogateescape") for a in raw.rstrip(b"\0").split(b"\0")]
            info.command_line = command_line_of(args)
        if info.image == "-" and (comm := _read(f"/proc/{pid}/comm")):
            info.image = comm.decode(errors="replace").strip()  # kernel threads, unreadable exe
        cwd = _readlink(f"/proc/{pid}/cwd")
        if cwd is not None:
            info.cwd = cwd
        loginuid = _read(f"/proc/{pid}/loginuid")
        if loginuid:
            info.auid = int(loginuid)

    def _add(self, info: ProcessInfo) -> None:
        with self._lock:
            old = self._live.get(info.pid)
            if old is not None and old.guid != info.guid:
                self._retire(old)
            self._live[info.pid] = info
            self._guids[info.guid] = info

    def _retire(self, info: ProcessInfo) -> None:
        info.terminated = True
        if info.time_terminated is None:
            info.time_terminated = time.monotonic()
        self._dead.append(info)
        self._dead_by_pid[info.pid] = info

    def has_exited(self) -> bool:
        """Whether exited processes wait for `expire()`."""
        return bool(self._dead)

    def _ensure(
        self, pid: int, ppid: int | None, mono_ns: int | None, *, from_record: bool = False
    ) -> ProcessInfo:
        """The live entry for pid, created from /proc or (when gone) from what the record says.

        `from_record`: the caller's record gives image, command line, cwd and user (audit), so a
        new entry needs only its start time from /proc, not the rest.
        """
        with self._lock:
            info = self._live.get(pid)
            if info is not None and (info.from_fork or info.execed):
                return info  # known from this boot's fork/exec records: no pid reuse in between
            start = start_ticks_of(pid)
            if info is not None and (start is None or start == info.start_ticks):
                return info
            fresh = self._from_proc(pid) if start is not None and not from_record else None
            if fresh is None:
                ticks = start if start is not None else (ticks_from_monotonic_ns(mono_ns) if mono_ns else 0)
                fresh = self._new(pid, ppid if ppid is not None else 0, ticks)
            elif ppid is not None and ppid > 0:
                fresh.ppid = ppid
            self._add(fresh)
            return fresh

    def on_fork(self, pid: int, ppid: int, mono_ns: int | None = None) -> ProcessInfo:
        """A new process inherits its parent's image, command line, cwd and user until it execs."""
        with self._lock:
            parent = self._live.get(ppid)
            start = ticks_from_monotonic_ns(mono_ns) if mono_ns else start_ticks_of(pid)
            ticks = start if start is not None else 0
            known = self._live.get(pid)
            if known is not None and known.execed and known.start_ticks in (ticks, 0):
                # the exec record (another source, another thread) overtook this fork record
                if known.ppid <= 0:
                    known.ppid = ppid
                return known
            info = self._new(pid, ppid, ticks)
            info.from_fork = True
            info.forked_only = True
            if parent is not None:
                info.image, info.command_line, info.cwd = parent.image, parent.command_line, parent.cwd
                info.uid, info.user, info.auid = parent.uid, parent.user, parent.auid
                info.hashes, info.exe_key = parent.hashes, parent.exe_key
                info.excluded = parent.excluded or None
                parent.count("children")
            self._add(info)
            return info

    def on_exec(
        self, pid: int, record: Mapping[str, Any] | None = None, mono_ns: int | None = None
    ) -> ProcessInfo:
        """Update pid for a new image; `record` is an audit exec record (argv, cwd, exe, uid)."""
        ppid = record.get("ppid") if record else None
        complete = bool(record and record.get("exe") and record.get("argv") and record.get("cwd"))
        info = self._ensure(pid, ppid, mono_ns, from_record=complete)
        with self._lock:
            info.execed = True
            info.from_fork = False
            info.forked_only = False
            info.hashes = {}
            info.exe_key = None
            if record:
                if record.get("exe"):
                    info.image = record["exe"]
                    info.exe_deleted = False
                if record.get("argv"):
                    info.command_line = command_line_of(record["argv"])
                if record.get("cwd"):
                    info.cwd = record["cwd"]
                if record.get("uid", -1) >= 0:
                    info.uid = record["uid"]
                    info.user = user_name(info.uid)
                if record.get("auid", -1) >= 0:
                    info.auid = record["auid"]
            else:
                # what the fork inherited is no longer true; unknown beats wrong if /proc is gone
                info.image, info.command_line, info.exe_deleted = "-", "-", False
                self._fill_from_proc(info)
        if self.hash_images:
            self.hash_image(info)
        return info

    def note_exec_image(
        self, pid: int, path: str, key: tuple[int, int, int, int], hashes: dict[str, str]
    ) -> None:
        """fanotify saw `pid` open `path` for exec: the race-free hashes of what it will run."""
        with self._lock:
            self._exec_images.setdefault(pid, []).append((path, key, hashes))
            if len(self._exec_images) > 4096:
                del self._exec_images[next(iter(self._exec_images))]

    def hash_from_cache(self, info: ProcessInfo) -> bool:
        """Fill `info.hashes` only if its image is already in the cache (never hashes inline)."""
        for path in (f"/proc/{info.pid}/exe", info.image):
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            found = self.hash_cache.get(key)
            if found is not None:
                info.exe_key, info.hashes = key, found
                return True
        return False

    def has_exec_image(self, pid: int) -> bool:
        with self._lock:
            return pid in self._exec_images

    def hash_image(self, info: ProcessInfo) -> None:
        """Hashes of the image: fanotify's exec fd, else /proc/PID/exe while alive, else the path."""
        with self._lock:
            seen = self._exec_images.pop(info.pid, [])
        for path, key, hashes in seen:
            if path.removesuffix(" (deleted)") == info.image:
                info.exe_key, info.hashes = key, hashes
                self.hash_origins["fanotify"] += 1
                return
        origin = "proc_exe"
        found = self.hash_cache.hash_path(f"/proc/{info.pid}/exe")
        if found is not None:
            exe = _readlink(f"/proc/{info.pid}/exe")
            if exe is not None and exe.removesuffix(" (deleted)") != info.image:
                found = None  # the pid already exec'd something else
        if found is None and info.image.startswith("/"):
            origin = "path"
            found = self.hash_cache.hash_path(info.image)
        if found is not None:
            info.exe_key, info.hashes = found
        self.hash_origins[origin if found is not None else "none"] += 1

    def on_exit(self, pid: int, status: int | None = None) -> ProcessInfo | None:
        with self._lock:
            info = self._live.pop(pid, None)
            if info is None:
                return None
            if status is not None:
                info.exit_code = status >> 8 if status & 0x7F == 0 else -(status & 0x7F)
            self._retire(info)
            return info

    def expire(self, now: float | None = None) -> int:
        """Forget exited processes older than the grace period and without live children."""
        now = time.monotonic() if now is None else now
        with self._lock:
            parents = {p.ppid for p in self._live.values()}
            keep, gone = [], 0
            for info in self._dead:
                if (info.time_terminated or now) + self.grace_s > now or info.pid in parents:
                    keep.append(info)
                else:
                    if self._guids.get(info.guid) is info:
                        del self._guids[info.guid]
                    if self._dead_by_pid.get(info.pid) is info:
                        del self._dead_by_pid[info.pid]
                    gone += 1
            self._dead = keep
            return gone

    def find(self, pid: int) -> ProcessInfo | None:
        """Live entry, or the most recent exited one in its grace period."""
        with self._lock:
            info = self._live.get(pid)
            if info is not None:
                return info
            return self._dead_by_pid.get(pid)

    def resolve(self, pid: int) -> ProcessInfo | None:
        """`find(pid)`, else load it from /proc (a process the sources never reported)."""
        info = self.find(pid)
        if info is None and pid > 0:
            info = self._from_proc(pid)
            if info is not None:
                if self.hash_images:
                    self.hash_image(info)
                self._add(info)
        return info

    def add_detection(self, guid: str, signatures: list[str], criticality: int) -> None:
        """Post-detection hook (WHIDS `hookUpdateGeneScore`): per-signature counts and score."""
        with self._lock:
            info = self._guids.get(guid)
            if info is None:
                return
            for sig in signatures:
                info.signatures[sig] = info.signatures.get(sig, 0) + 1
            info.threat_score += criticality

    def parent_guid(self, info: ProcessInfo) -> str:
        parent = self.parent_of(info)
        return parent.guid if parent is not None else ZERO_GUID
