"""Host inventory read from /proc for the IR report: processes, shared objects, sockets, modules."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import pwd
import socket
import struct
from dataclasses import dataclass
from typing import Any

from vigil.agent.actions._proc import exe_path, read_cmdline, read_stat, read_status_ids

_TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
    "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}  # fmt: skip
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class HashCache:
    """md5/sha1/sha256 of files keyed by (dev, inode, mtime, size)."""

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = max_bytes
        self._cache: dict[tuple[int, int, int, int], dict[str, str]] = {}

    def hashes(self, path: str) -> dict[str, str]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return {}
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            if key in self._cache:
                return self._cache[key]
            if st.st_size > self.max_bytes:
                return {}
            hs = [hashlib.md5(usedforsecurity=False), hashlib.sha1(usedforsecurity=False), hashlib.sha256()]
            off = 0
            while chunk := os.pread(fd, 1 << 20, off):
                for h in hs:
                    h.update(chunk)
                off += len(chunk)
            result = {"md5": hs[0].hexdigest(), "sha1": hs[1].hexdigest(), "sha256": hs[2].hexdigest()}
            self._cache[key] = result
            return result
        except OSError:
            return {}
        finally:
            os.close(fd)


@dataclass
class ProcEntry:
    pid: int
    ppid: int
    image: str
    command_line: str
    cwd: str
    uid: int
    user: str
    start_ticks: int


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def scan_processes(proc: str = "/proc") -> dict[int, ProcEntry]:
    """Every user-space process visible in /proc (kernel threads have no image and are skipped)."""
    out: dict[int, ProcEntry] = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            image = exe_path(pid, proc)
            if not image:
                continue
            st = read_stat(pid, proc)
            uid, _ = read_status_ids(pid, proc)
            try:
                cwd = os.readlink(f"{proc}/{pid}/cwd")
            except OSError:
                cwd = ""
            out[pid] = ProcEntry(
                pid, st.ppid, image, " ".join(read_cmdline(pid, proc)), cwd, uid, _user(uid), st.start_ticks
            )
        except (OSError, IndexError, ValueError):
            continue
    return out


def ancestors(pid: int, table: dict[int, ProcEntry]) -> list[str]:
    """Images from the oldest ancestor down to the parent."""
    chain: list[str] = []
    seen = {pid}
    cur = table[pid].ppid if pid in table else 0
    while cur in table and cur not in seen:
        chain.append(table[cur].image)
        seen.add(cur)
        cur = table[cur].ppid
    return chain[::-1]


def shared_objects(pid: int, proc: str = "/proc") -> list[str]:
    """File-backed executable mappings other than the main image (shared objects, in load order)."""
    seen: dict[str, None] = {}
    image = exe_path(pid, proc)
    try:
        with open(f"{proc}/{pid}/maps") as f:
            for line in f:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and "x" in parts[1] and parts[5].startswith("/"):
                    path = parts[5].rstrip("\n")
                    if path != image:
                        seen.setdefault(path)
    except OSError:
        return []
    return list(seen)


def kernel_modules(path: str = "/proc/modules") -> dict[str, Any]:
    """Loaded kernel modules, or why they cannot be listed (a kernel without CONFIG_MODULES)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return {"available": False, "reason": f"{path} is absent: this kernel has no loadable module support"}
    except OSError as exc:
        return {"available": False, "reason": f"{path}: {exc.strerror}"}
    mods = []
    for line in lines:
        p = line.split()
        if len(p) >= 5:
            deps = [d for d in p[3].split(",") if d and d != "-"]
            mods.append({"name": p[0], "size": int(p[1]), "refcount": p[2], "used-by": deps, "state": p[4]})
    return {"available": True, "modules": mods}


def _addr(hexaddr: str) -> tuple[str, int]:
    host, port = hexaddr.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:
        words = struct.unpack("<4I", raw)
        ip = str(ipaddress.IPv6Address(struct.pack(">4I", *words)))
    return ip, int(port, 16)


def socket_owners(proc: str = "/proc") -> dict[int, int]:
    """socket inode -> pid, from /proc/*/fd links."""
    owners: dict[int, int] = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            for fd in os.listdir(f"{proc}/{name}/fd"):
                try:
                    link = os.readlink(f"{proc}/{name}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    owners.setdefault(int(link[8:-1]), int(name))
        except OSError:
            continue
    return owners


def connections(proc: str = "/proc") -> list[dict[str, Any]]:
    """TCP and UDP sockets of /proc/net with their owning pid when known."""
    owners = socket_owners(proc)
    out = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open(f"{proc}/net/{proto}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            p = row.split()
            if len(p) < 10:
                continue
            (lip, lport), (rip, rport) = _addr(p[1]), _addr(p[2])
            inode = int(p[9])
            state = (
                _TCP_STATES.get(p[3], p[3])
                if proto.startswith("tcp")
                else ("UNCONN" if p[3] == "07" else p[3])
            )
            out.append(
                {
                    "protocol": proto,
                    "local-ip": lip,
                    "local-port": lport,
                    "remote-ip": rip,
                    "remote-port": rport,
                    "state": state,
                    "inode": inode,
                    "pid": owners.get(inode),
                }
            )
    return out


def start_time_seconds(start_ticks: int) -> float:
    """Process start time as seconds since boot."""
    return start_ticks / _CLK_TCK
