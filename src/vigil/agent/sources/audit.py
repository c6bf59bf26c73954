"""Exec, connect and kernel-module syscalls from the Linux audit subsystem over netlink.

The source installs its own exit rules (execve/execveat, connect, init_module/finit_module/
delete_module), tagged with a key unique to this instance (`vigil-<pid>-<random>`), and removes
them on stop. It reads records as the audit daemon (unicast) when no daemon holds the audit pid,
and otherwise from the read-only multicast group, so it coexists with a running auditd. A record
carries argv, cwd, exe and uids inside it, so short-lived processes are never missing their
command line.

Records of one event share a serial and end with EOE; events are grouped by serial and emitted
as `exec`, `connect` and `module` raw records. Records from any rule are accepted: the kernel
reports only the first matching rule's key, so filtering on our own key would lose events that
another rule (another vigil instance, auditd) matched first.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import select
import socket
import time
from typing import Any

from vigil.agent.sources import _auditnl as nl
from vigil.agent.sources._recvmmsg import DatagramReader
from vigil.agent.sources.base import (
    CAP_AUDIT_CONTROL,
    CAP_AUDIT_READ,
    EventSource,
    has_capability,
)
from vigil.agent.sources.netinv import socket_of_fd

logger = logging.getLogger(__name__)

KEY_PREFIX = "vigil-"
SO_RCVBUFFORCE = 33  # root may exceed net.core.rmem_max
_GROUP_TIMEOUT_NS = 2_000_000_000
_FLUSH_EVERY_MS = 500  # how often groups that never saw their EOE are looked at
_WANTED = {nl.AUDIT_SYSCALL, nl.AUDIT_EXECVE, nl.AUDIT_CWD, nl.AUDIT_SOCKADDR}
_BACKLOG = 32768  # kernel records queued for the reader (about 4 000 execs); raised, then restored
_RCVBUF = 32 << 20  # the reader socket's receive buffer (SO_RCVBUFFORCE)
_BATCH = 256  # datagrams per recvmmsg
_DATAGRAM = 9000  # the kernel's longest audit record (MAX_AUDIT_MESSAGE_LENGTH 8970) fits

RULE_SETS: dict[str, list[str]] = {
    "exec": ["execve", "execveat"],
    "net": ["connect"],
    "mod": ["init_module", "finit_module", "delete_module"],
}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class AuditSource(EventSource):
    """Emits `exec`, `connect`, `module` and `lost` raw records from audit."""

    name = "audit"
    loop_capable = True

    def __init__(self, rule_sets: tuple[str, ...] = ("exec", "net", "mod"), *, mode: str = "auto") -> None:
        super().__init__()
        unknown = set(rule_sets) - set(RULE_SETS)
        if unknown:
            raise ValueError(f"unknown audit rule set(s) {sorted(unknown)}; known: {sorted(RULE_SETS)}")
        if mode not in ("auto", "unicast", "multicast"):
            raise ValueError(f"audit mode must be auto, unicast or multicast, got {mode!r}")
        self.rule_sets = rule_sets
        self.requested_mode = mode
        self.mode: str | None = None
        self.key = f"{KEY_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self._ctl: socket.socket | None = None
        self._reader: socket.socket | None = None
        self._installed: list[bytes] = []
        self._enabled_by_us = False
        self._backlog_restore: int | None = None  # the backlog limit we found, when we raised it
        self._groups: dict[int, list[tuple[int, dict[bytes, bytes]]]] = {}
        self._group_ts: dict[int, int] = {}
        self._syscalls: dict[int, str] = {}
        self._reader_calls: DatagramReader | None = None
        self._last_flush = 0

    # -- requirements ----------------------------------------------------------------------------
    def requirements(self) -> list[str]:
        unmet = []
        if nl.machine_arch() is None:
            unmet.append(f"audit syscall rules are not defined for this machine ({os.uname().machine})")
        if not has_capability(CAP_AUDIT_CONTROL):
            unmet.append("audit rules need CAP_AUDIT_CONTROL (run the agent as root)")
        if not os.path.exists("/proc/self/loginuid"):
            unmet.append(
                "the kernel has no audit support (CONFIG_AUDITSYSCALL is off: no /proc/self/loginuid)"
            )
        if self.requested_mode == "multicast" and not has_capability(CAP_AUDIT_READ):
            unmet.append("reading the audit multicast group needs CAP_AUDIT_READ")
        return unmet

    # -- lifecycle -------------------------------------------------------------------------------
    def _open(self) -> None:
        arch = nl.machine_arch()
        assert arch is not None
        self._ctl = nl.open_socket()
        try:
            status = nl.get_status(self._ctl)
            if status.enabled == 2:
                raise nl.AuditError(
                    errno.EPERM, "audit configuration is locked (enabled=2); rules cannot be added"
                )
            self._remove_stale_rules()
            self._open_reader(status)
            if status.enabled == 0:
                nl.set_status(self._ctl, nl.AUDIT_STATUS_ENABLED, enabled=1)
                self._enabled_by_us = True
            if status.backlog_limit < _BACKLOG:
                nl.set_status(self._ctl, nl.AUDIT_STATUS_BACKLOG_LIMIT, backlog_limit=_BACKLOG)
                self._backlog_restore = status.backlog_limit
            arch_id, numbers = arch
            for rs in self.rule_sets:
                calls = [numbers[c] for c in RULE_SETS[rs]]
                for c in RULE_SETS[rs]:
                    self._syscalls[numbers[c]] = c
                payload = nl.rule_payload(arch_id, calls, self.key, exclude_pid=os.getpid())
                nl.request(self._ctl, nl.AUDIT_ADD_RULE, payload)
                self._installed.append(payload)
            logger.info(
                "audit: %s mode, rules %s installed with key %s",
                self.mode,
                ",".join(self.rule_sets),
                self.key,
            )
        except BaseException:
            self._close()
            raise

    def _open_reader(self, status: nl.AuditStatus) -> None:
        mode = self.requested_mode
        if mode == "auto":
            owner = status.pid
            mode = "unicast" if owner == 0 or not _pid_alive(owner) else "multicast"
            if mode == "multicast":
                logger.info("audit: pid %d owns the audit daemon role; reading the multicast group", owner)
        if mode == "unicast":
            reader = nl.open_socket()
            try:
                reader.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _RCVBUF)
                nl.set_status(reader, nl.AUDIT_STATUS_PID, pid=os.getpid())
            except OSError as e:
                reader.close()
                if self.requested_mode != "auto":
                    raise
                # another daemon registered since we looked: read beside it instead
                logger.info("audit: cannot become the audit daemon (%s); reading the multicast group", e)
                mode = "multicast"
        if mode == "multicast":
            if not has_capability(CAP_AUDIT_READ):
                raise nl.AuditError(
                    errno.EPERM,
                    f"another audit daemon (pid {status.pid}) owns the audit pid and the multicast group "
                    "needs CAP_AUDIT_READ",
                )
            reader = nl.open_socket(1 << (nl.AUDIT_NLGRP_READLOG - 1))
            reader.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _RCVBUF)
        self._reader = reader
        self.mode = mode

    def _remove_stale_rules(self) -> None:
        """Delete vigil rules left by instances whose process is gone (a crash, a kill -9)."""
        assert self._ctl is not None
        for rule, payload in nl.list_rules(self._ctl):
            if not rule.key.startswith(KEY_PREFIX):
                continue
            try:
                owner = int(rule.key[len(KEY_PREFIX) :].split("-", 1)[0])
            except ValueError:
                continue
            if not _pid_alive(owner):
                logger.info("audit: removing stale rule with key %s", rule.key)
                nl.delete_rule(self._ctl, payload)

    def _close(self) -> None:
        ctl = self._ctl
        if ctl is not None:
            for payload in self._installed:
                try:
                    nl.delete_rule(ctl, payload)
                except OSError:
                    logger.exception("audit: could not remove rule with key %s", self.key)
            self._installed.clear()
        if self._reader is not None:
            if self.mode == "unicast":
                try:
                    nl.set_status(self._reader, nl.AUDIT_STATUS_PID, pid=0)
                except OSError as e:
                    logger.warning("audit: could not release the audit pid: %s", e)
            self._reader.close()
            self._reader = None
        if ctl is not None:
            self._restore_backlog(ctl)
            if self._enabled_by_us:
                try:
                    if not nl.list_rules(ctl):  # nobody else relies on audit: leave it as we found it
                        nl.set_status(ctl, nl.AUDIT_STATUS_ENABLED, enabled=0)
                except OSError:
                    logger.exception("audit: could not restore enabled=0")
                self._enabled_by_us = False
            ctl.close()
            self._ctl = None

    def _restore_backlog(self, ctl: socket.socket) -> None:
        """Put back the backlog limit we raised, unless someone changed it since. (Another vigil
        instance started meanwhile found it raised and changed nothing, so this one restores.)"""
        if self._backlog_restore is None:
            return
        original, self._backlog_restore = self._backlog_restore, None
        try:
            if nl.get_status(ctl).backlog_limit != _BACKLOG:
                return
            nl.set_status(ctl, nl.AUDIT_STATUS_BACKLOG_LIMIT, backlog_limit=original)
        except OSError:
            logger.exception("audit: could not restore the backlog limit to %d", original)

    # -- reading ---------------------------------------------------------------------------------
    # One thread reads and parses: each wakeup drains every waiting datagram (recvmmsg, many per
    # system call) and then parses them. A second thread that only drained the socket was measured
    # slower under bursts: with the GIL, the hand-off between the two cost more than it saved, and
    # the parser fell seconds behind. Bursts wait in the 32 MiB socket buffer and the kernel's
    # audit backlog (raised to _BACKLOG while we run) instead.
    def _loop_fd(self) -> int:
        assert self._reader is not None
        return self._reader.fileno()

    def _run(self) -> None:
        assert self._reader is not None
        poller = select.poll()
        poller.register(self._reader, select.POLLIN)
        poller.register(self._wakefd, select.POLLIN)
        while not self._stop.is_set():
            if poller.poll(self._idle_ms()):
                self._drain()
            elif self._group_ts:
                self._flush_old()

    def _idle_ms(self) -> int | None:
        if not self._group_ts:
            return None
        return max(0, _FLUSH_EVERY_MS - (time.monotonic_ns() - self._last_flush) // 1_000_000)

    def _drain(self) -> None:
        reader = self._reader_calls
        if reader is None or reader.sock is not self._reader:
            assert self._reader is not None
            reader = self._reader_calls = DatagramReader(self._reader, batch=_BATCH, size=_DATAGRAM)
        record = self._record
        for datagram in self._read_batch(reader):
            typ = int.from_bytes(datagram[4:6], "little")
            if typ >= nl.AUDIT_FIRST_USER_MSG:
                record(typ, datagram[16:])
        if self._group_ts and time.monotonic_ns() - self._last_flush >= _FLUSH_EVERY_MS * 1_000_000:
            self._flush_old()

    def stats(self) -> dict[str, int]:
        out = super().stats()
        reader = self._reader_calls
        out["recv_calls"] = reader.calls if reader is not None else 0
        return out

    def _record(self, typ: int, body: bytes) -> None:
        self._received += 1
        if typ not in _WANTED:
            if typ == nl.AUDIT_EOE:
                head = nl.parse_header(body)
                if head is not None:
                    serial = head[1]
                    group = self._groups.pop(serial, None)
                    self._group_ts.pop(serial, None)
                    if group is not None:
                        self._event(group)
            return  # PATH, PROCTITLE, BPRM_FCAPS, ...: not used, not parsed
        head = nl.parse_header(body)
        if head is None:
            return
        ts_ns, serial, start = head
        if typ == nl.AUDIT_SYSCALL:
            fields = nl.split_fields(body[start:])
            try:
                nr = int(fields.get(b"syscall", b"-1"))
            except ValueError:
                return
            if nr not in self._syscalls:
                return
            fields[b"_ts"] = str(ts_ns).encode()  # the event's kernel time (ms resolution)
            self._groups[serial] = [(typ, fields)]
            self._group_ts[serial] = time.monotonic_ns()
        else:
            group = self._groups.get(serial)
            if group is not None:
                group.append((typ, nl.split_fields(body[start:])))

    def _flush_old(self) -> None:
        now = time.monotonic_ns()
        self._last_flush = now
        if not self._group_ts:
            return
        limit = now - _GROUP_TIMEOUT_NS
        for serial in [s for s, t in self._group_ts.items() if t < limit]:
            self._group_ts.pop(serial, None)
            group = self._groups.pop(serial, None)
            if group:
                self._event(group)

    def _event(self, group: list[tuple[int, dict[bytes, bytes]]]) -> None:
        sc = group[0][1]
        syscall = self._syscalls.get(int(sc.get(b"syscall", b"-1")), "?")
        success = sc.get(b"success") == b"yes"
        if syscall in ("execve", "execveat") and not success:
            return  # PATH search misses (e.g. shims) are not process creations

        def num(name: bytes) -> int:
            try:
                return int(sc.get(name, b"-1"))
            except ValueError:
                return -1

        ts = num(b"_ts")
        base: dict[str, Any] = {
            "pid": num(b"pid"),
            "ppid": num(b"ppid"),
            "uid": num(b"uid"),
            "euid": num(b"euid"),
            "auid": num(b"auid"),
            "gid": num(b"gid"),
            "comm": nl.decode_value(sc.get(b"comm")),
            "exe": nl.decode_value(sc.get(b"exe")),
            "ts_ns": ts if ts > 0 else time.time_ns(),
            "syscall": syscall,
            "success": success,
            "exit": num(b"exit"),
        }
        by_type: dict[int, dict[bytes, bytes]] = {}
        for typ, fields in group[1:]:
            by_type.setdefault(typ, fields)  # the first record of each type
        if syscall in ("execve", "execveat"):
            self._emit(
                {
                    "type": "exec",
                    **base,
                    "argv": nl.decode_argv(by_type.get(nl.AUDIT_EXECVE, {})),
                    "cwd": nl.decode_value(by_type.get(nl.AUDIT_CWD, {}).get(b"cwd")),
                }
            )
        elif syscall == "connect":
            addr = nl.decode_sockaddr(by_type.get(nl.AUDIT_SOCKADDR, {}).get(b"saddr"))
            if addr is None:
                return  # AF_UNIX, AF_NETLINK, ...: not a network connection
            family, daddr, dport = addr
            try:
                fd = int(sc.get(b"a0", b"-1"), 16)
            except ValueError:
                fd = -1
            # Look the socket up now, while the process most likely still holds it.
            entry = socket_of_fd(base["pid"], fd) if fd >= 0 else None
            self._emit(
                {
                    "type": "connect",
                    **base,
                    "family": "ipv6" if family == socket.AF_INET6 else "ipv4",
                    "daddr": daddr,
                    "dport": dport,
                    "fd": fd,
                    "proto": entry.proto.rstrip("6") if entry else None,
                    "saddr": entry.laddr if entry else None,
                    "sport": entry.lport if entry else None,
                }
            )
        else:
            path = None
            if syscall == "finit_module":
                try:
                    path = os.readlink(f"/proc/{base['pid']}/fd/{int(sc.get(b'a0', b'-1'), 16)}")
                except (OSError, ValueError):
                    path = None  # the loader is gone or the fd was invalid
            self._emit({"type": "module", **base, "path": path})
