"""Dump a running process to an ELF core file from /proc/PID/maps and /proc/PID/mem.

The target is not stopped (the caller may SIGSTOP it first for a consistent image). The file has
one PT_NOTE (NT_PRSTATUS per thread with the stack and instruction pointers /proc exposes,
NT_PRPSINFO, NT_AUXV, NT_FILE) and one PT_LOAD per readable mapping; [vvar]-like mappings, which
the kernel refuses to read, are skipped. The core is written sequentially, so ``out`` may be a
compressing stream. Registers other than sp/pc are zero: reading them needs ptrace, which stops
the target.
"""

from __future__ import annotations

import logging
import os
import platform
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from vigil.agent.actions._proc import read_cmdline, read_stat, read_status_ids
from vigil.agent.actions.errors import ActionUnavailable, TargetGone

logger = logging.getLogger(__name__)

PAGE = os.sysconf("SC_PAGE_SIZE")
_CHUNK = 1 << 20
_SKIP = frozenset({"[vvar]", "[vvar_vclock]", "[vsyscall]"})
_PN_XNUM = 0xFFFF
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_NOTE_HDR = struct.Struct("<III")
PT_LOAD, PT_NOTE = 1, 4
NT_PRSTATUS, NT_PRPSINFO, NT_AUXV, NT_FILE = 1, 3, 6, 0x46494C45
_PRPSINFO = struct.Struct("<4B4xQIIiiii16s80s")
_STATE_NUM = {"R": 0, "S": 1, "D": 2, "T": 3, "t": 3, "Z": 4, "X": 5}


class Sink(Protocol):
    """Where the core goes: a file, a gzip stream, an artifact writer."""

    def write(self, data: bytes, /) -> int: ...


@dataclass(frozen=True, slots=True)
class _Arch:
    machine: int
    nregs: int
    sp_index: int
    pc_index: int
    nr_index: int | None


_ARCHES = {
    "x86_64": _Arch(machine=62, nregs=27, sp_index=19, pc_index=16, nr_index=15),
    "aarch64": _Arch(machine=183, nregs=34, sp_index=31, pc_index=32, nr_index=None),
}


def supported_architectures() -> tuple[str, ...]:
    return tuple(_ARCHES)


@dataclass(frozen=True, slots=True)
class Mapping:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    offset: int
    path: str

    @property
    def flags(self) -> int:
        return (
            (4 if "r" in self.perms else 0)
            | (2 if "w" in self.perms else 0)
            | (1 if "x" in self.perms else 0)
        )


@dataclass(frozen=True, slots=True)
class CoreSummary:
    """What a dump wrote: region count, bytes of memory, bytes that could not be read."""

    pid: int
    regions: int
    memory_bytes: int
    unreadable_bytes: int
    threads: int


def read_maps(pid: int) -> list[Mapping]:
    """Parse /proc/PID/maps; TargetGone when the process does not exist."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise TargetGone(f"pid {pid} does not exist", action="memdump", target=pid) from exc
    maps = []
    for line in lines:
        parts = line.split(maxsplit=5)
        start, end = (int(x, 16) for x in parts[0].split("-"))
        maps.append(Mapping(start, end, parts[1], int(parts[2], 16), parts[5] if len(parts) > 5 else ""))
    return maps


def _note(name: bytes, ntype: int, desc: bytes) -> bytes:
    name_z = name + b"\0"
    pad_n = (-len(name_z)) % 4
    pad_d = (-len(desc)) % 4
    return _NOTE_HDR.pack(len(name_z), len(desc), ntype) + name_z + b"\0" * pad_n + desc + b"\0" * pad_d


def _thread_regs(pid: int, tid: int, arch: _Arch) -> list[int]:
    """sp/pc (and syscall number) of a blocked thread from /proc/PID/task/TID/syscall; zeros otherwise."""
    regs = [0] * arch.nregs
    try:
        with open(f"/proc/{pid}/task/{tid}/syscall") as f:
            fields = f.read().split()
    except OSError:
        return regs
    if len(fields) >= 3 and fields[0] not in ("running", "-1"):
        regs[arch.sp_index] = int(fields[-2], 16)
        regs[arch.pc_index] = int(fields[-1], 16)
        if arch.nr_index is not None:
            regs[arch.nr_index] = int(fields[0])
    return regs


def _prstatus(pid: int, tid: int, arch: _Arch) -> bytes:
    st = read_stat(pid)
    head = struct.pack("<iiih2xQQiiii", 0, 0, 0, 0, 0, 0, tid, st.ppid, st.pgrp, st.session)
    times = b"\0" * 64  # utime, stime, cutime, cstime (struct timeval x4)
    regs = struct.pack(f"<{arch.nregs}Q", *(r & 0xFFFFFFFFFFFFFFFF for r in _thread_regs(pid, tid, arch)))
    return head + times + regs + struct.pack("<i4x", 0)


def _prpsinfo(pid: int) -> bytes:
    st = read_stat(pid)
    uid, gid = read_status_ids(pid)
    try:
        args = " ".join(read_cmdline(pid)).encode()[:79]
    except OSError:
        args = b""
    return _PRPSINFO.pack(
        _STATE_NUM.get(st.state, 0),
        ord(st.state[:1] or "?"),
        1 if st.state == "Z" else 0,
        st.nice & 0xFF,
        st.flags,
        uid & 0xFFFFFFFF,
        gid & 0xFFFFFFFF,
        pid,
        st.ppid,
        st.pgrp,
        st.session,
        st.comm.encode()[:15],
        args,
    )


def _nt_file(maps: list[Mapping]) -> bytes:
    files = [m for m in maps if m.path.startswith("/")]
    body = struct.pack("<QQ", len(files), PAGE)
    body += b"".join(struct.pack("<QQQ", m.start, m.end, m.offset // PAGE) for m in files)
    body += b"".join(m.path.encode("utf-8", "surrogateescape") + b"\0" for m in files)
    return body


def _notes(pid: int, maps: list[Mapping], arch: _Arch) -> tuple[bytes, int]:
    try:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        tids = [pid]
    tids = [pid] + [t for t in tids if t != pid]
    blob = b"".join(_note(b"CORE", NT_PRSTATUS, _prstatus(pid, tid, arch)) for tid in tids)
    blob += _note(b"CORE", NT_PRPSINFO, _prpsinfo(pid))
    try:
        with open(f"/proc/{pid}/auxv", "rb") as f:
            blob += _note(b"CORE", NT_AUXV, f.read())
    except OSError:
        pass
    blob += _note(b"CORE", NT_FILE, _nt_file(maps))
    return blob, len(tids)


def _read_region(mem_fd: int, m: Mapping) -> Iterator[tuple[bytes, bool]]:
    """Chunks of a mapping; unreadable chunks come back as zeros flagged False."""
    addr = m.start
    while addr < m.end:
        size = min(_CHUNK, m.end - addr)
        try:
            data = os.pread(mem_fd, size, addr)
        except OSError:
            data = b""
        if len(data) == size:
            yield data, True
        else:
            yield data + b"\0" * (size - len(data)), False
        addr += size


def write_core(pid: int, out: Sink) -> CoreSummary:
    """Write an ELF core of ``pid`` to ``out`` sequentially. Raises TargetGone / ActionUnavailable."""
    arch = _ARCHES.get(platform.machine())
    if arch is None:
        raise ActionUnavailable(f"memdump: unsupported architecture {platform.machine()}", action="memdump")
    maps = [m for m in read_maps(pid) if m.perms.startswith("r") and m.path not in _SKIP]
    try:
        mem_fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise TargetGone(f"pid {pid} exited", action="memdump", target=pid) from exc
    except PermissionError as exc:
        raise ActionUnavailable(f"memdump: cannot read /proc/{pid}/mem: {exc}", action="memdump") from exc
    try:
        notes, threads = _notes(pid, maps, arch)
        maps = maps[: _PN_XNUM - 2]
        phnum = 1 + len(maps)
        notes_off = _EHDR.size + phnum * _PHDR.size
        data_off = -(-(notes_off + len(notes)) // PAGE) * PAGE
        ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
        header = _EHDR.pack(
            ident, 4, arch.machine, 1, 0, _EHDR.size, 0, 0, _EHDR.size, _PHDR.size, phnum, 64, 0, 0
        )
        phdrs = [_PHDR.pack(PT_NOTE, 0, notes_off, 0, 0, len(notes), 0, 4)]
        off = data_off
        for m in maps:
            size = m.end - m.start
            phdrs.append(_PHDR.pack(PT_LOAD, m.flags, off, m.start, 0, size, size, PAGE))
            off += size
        out.write(header + b"".join(phdrs) + notes)
        out.write(b"\0" * (data_off - notes_off - len(notes)))
        total = unreadable = 0
        for m in maps:
            for chunk, ok in _read_region(mem_fd, m):
                out.write(chunk)
                total += len(chunk)
                unreadable += 0 if ok else len(chunk)
    finally:
        os.close(mem_fd)
    logger.info("memdump of pid %s: %s regions, %s bytes (%s unreadable)", pid, len(maps), total, unreadable)
    return CoreSummary(pid, len(maps), total, unreadable, threads)


def dump_to_file(pid: int, path: str | os.PathLike[str]) -> CoreSummary:
    """write_core into a new file at ``path``."""
    with open(path, "xb") as f:
        return write_core(pid, f)
