"""The Linux audit netlink protocol: status, rules and record text (no auditctl, no libaudit).

Only what the audit source needs: read/set `struct audit_status`, add/delete/list syscall rules
tagged with a filter key, and split record text (`audit(SECS.MS:SERIAL): k=v ...`) into fields,
decoding the hex encoding the kernel uses for values with spaces or control characters.
"""

from __future__ import annotations

import binascii
import errno
import os
import platform
import re
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

NETLINK_AUDIT = 9
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 1
NLM_F_ACK = 4

AUDIT_GET = 1000
AUDIT_SET = 1001
AUDIT_ADD_RULE = 1011
AUDIT_DEL_RULE = 1012
AUDIT_LIST_RULES = 1013
AUDIT_FIRST_USER_MSG = 1100
AUDIT_LAST_USER_MSG2 = 2999

AUDIT_SYSCALL = 1300
AUDIT_PATH = 1302
AUDIT_SOCKADDR = 1306
AUDIT_CWD = 1307
AUDIT_EXECVE = 1309
AUDIT_EOE = 1320
AUDIT_PROCTITLE = 1327

AUDIT_STATUS_ENABLED = 0x1
AUDIT_STATUS_PID = 0x4
AUDIT_STATUS_BACKLOG_LIMIT = 0x10

AUDIT_NLGRP_READLOG = 1
AUDIT_FILTER_EXIT = 0x04
AUDIT_ALWAYS = 2
AUDIT_PID = 0
AUDIT_ARCH = 11
AUDIT_FILTERKEY = 210
AUDIT_EQUAL = 0x40000000
AUDIT_NOT_EQUAL = 0x30000000
AUDIT_BITMASK_SIZE = 64
AUDIT_MAX_FIELDS = 64
# Field types whose value is a string in the rule's buffer (value = its length).
_STRING_FIELDS = {13, 14, 15, 16, 17, 19, 20, 21, 22, 105, 107, 112, AUDIT_FILTERKEY}

_NLHDR = struct.Struct("=IHHII")
_STATUS = struct.Struct("=11I")
_RULE_HEAD = struct.Struct("=III")
_RULE_SIZE = _RULE_HEAD.size + 4 * 4 * 64 + 4

# (audit arch constant, syscall numbers) per machine.
ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        {
            "execve": 59,
            "execveat": 322,
            "connect": 42,
            "init_module": 175,
            "finit_module": 313,
            "delete_module": 176,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "execve": 221,
            "execveat": 281,
            "connect": 203,
            "init_module": 105,
            "finit_module": 273,
            "delete_module": 106,
        },
    ),
}


def machine_arch() -> tuple[int, dict[str, int]] | None:
    return ARCHES.get(platform.machine())


@dataclass
class AuditStatus:
    mask: int
    enabled: int
    failure: int
    pid: int
    rate_limit: int
    backlog_limit: int
    lost: int
    backlog: int


@dataclass(frozen=True)
class AuditRule:
    """A syscall exit rule as the kernel lists it (only what vigil uses)."""

    syscalls: frozenset[int]
    key: str


class AuditError(OSError):
    """The kernel refused an audit request."""


def open_socket(groups: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
    try:
        s.bind((0, groups))
    except OSError:
        s.close()
        raise
    return s


def send(
    sock: socket.socket, typ: int, payload: bytes, flags: int = NLM_F_REQUEST | NLM_F_ACK, seq: int = 1
) -> None:
    sock.send(_NLHDR.pack(_NLHDR.size + len(payload), typ, flags, seq, 0) + payload)


def _messages(buf: bytes) -> list[tuple[int, bytes]]:
    out = []
    off = 0
    while off + _NLHDR.size <= len(buf):
        ln, typ = _NLHDR.unpack_from(buf, off)[:2]
        if AUDIT_FIRST_USER_MSG <= typ <= AUDIT_LAST_USER_MSG2 or ln < _NLHDR.size:
            # Audit records: nlmsg_len may exclude the header; the datagram is one record.
            out.append((typ, buf[off + _NLHDR.size :]))
            break
        out.append((typ, buf[off + _NLHDR.size : off + ln]))
        off += (ln + 3) & ~3
    return out


def request(sock: socket.socket, typ: int, payload: bytes, *, want: int | None = None) -> list[bytes]:
    """Send a request and collect replies of type `want` until the ack (or NLMSG_DONE)."""
    send(sock, typ, payload)
    replies: list[bytes] = []
    sock.settimeout(2.0)
    try:
        while True:
            buf = sock.recv(1 << 16)
            for mtyp, body in _messages(buf):
                if mtyp == NLMSG_ERROR:
                    code = struct.unpack_from("=i", body)[0]
                    if code != 0:
                        raise AuditError(-code, f"audit request {typ} refused: {os.strerror(-code)}")
                    if want is None:
                        return replies
                elif mtyp == NLMSG_DONE:
                    return replies
                elif want is not None and mtyp == want:
                    replies.append(body)
                    if want == AUDIT_GET:
                        return replies
    finally:
        sock.settimeout(None)


def get_status(sock: socket.socket) -> AuditStatus:
    body = request(sock, AUDIT_GET, b"", want=AUDIT_GET)[0]
    body = body.ljust(_STATUS.size, b"\0")
    return AuditStatus(*_STATUS.unpack_from(body)[:8])


def set_status(
    sock: socket.socket, mask: int, *, enabled: int = 0, pid: int = 0, backlog_limit: int = 0
) -> None:
    payload = _STATUS.pack(mask, enabled, 0, pid, 0, backlog_limit, 0, 0, 0, 0, 0)
    request(sock, AUDIT_SET, payload)


def rule_payload(arch: int, syscalls: list[int], key: str, exclude_pid: int | None = None) -> bytes:
    """`struct audit_rule_data` for `-a always,exit -F arch=.. -S .. [-F pid!=..] -k key`."""
    kb = key.encode()
    if not 0 < len(kb) <= 256:
        raise ValueError(f"audit key must be 1..256 bytes, got {len(kb)}")
    mask = [0] * AUDIT_BITMASK_SIZE
    for nr in syscalls:
        mask[nr // 32] |= 1 << (nr % 32)
    fields = [(AUDIT_ARCH, AUDIT_EQUAL, arch)]
    if exclude_pid is not None:
        fields.append((AUDIT_PID, AUDIT_NOT_EQUAL, exclude_pid))
    fields.append((AUDIT_FILTERKEY, AUDIT_EQUAL, len(kb)))
    pad = [0] * (AUDIT_MAX_FIELDS - len(fields))
    return (
        _RULE_HEAD.pack(AUDIT_FILTER_EXIT, AUDIT_ALWAYS, len(fields))
        + struct.pack("=64I", *mask)
        + struct.pack("=64I", *([f[0] for f in fields] + pad))
        + struct.pack("=64I", *([f[2] for f in fields] + pad))
        + struct.pack("=64I", *([f[1] for f in fields] + pad))
        + struct.pack("=I", len(kb))
        + kb
    )


def parse_rule(body: bytes) -> AuditRule:
    _flags, _action, count = _RULE_HEAD.unpack_from(body)
    off = _RULE_HEAD.size
    mask = struct.unpack_from("=64I", body, off)
    fields = struct.unpack_from("=64I", body, off + 256)
    values = struct.unpack_from("=64I", body, off + 512)
    buflen = struct.unpack_from("=I", body, off + 1024)[0]
    buf = body[_RULE_SIZE : _RULE_SIZE + buflen]
    syscalls = {i * 32 + b for i, word in enumerate(mask) for b in range(32) if word >> b & 1}
    key = ""
    pos = 0
    for i in range(count):
        if fields[i] in _STRING_FIELDS:
            text = buf[pos : pos + values[i]]
            pos += values[i]
            if fields[i] == AUDIT_FILTERKEY:
                key = text.decode(errors="replace")
    return AuditRule(frozenset(syscalls), key)


def list_rules(sock: socket.socket) -> list[tuple[AuditRule, bytes]]:
    """Every exit rule with its raw payload (the payload deletes it again)."""
    return [(parse_rule(b), b) for b in request(sock, AUDIT_LIST_RULES, b"", want=AUDIT_LIST_RULES)]


def delete_rule(sock: socket.socket, payload: bytes) -> None:
    try:
        request(sock, AUDIT_DEL_RULE, payload)
    except AuditError as e:
        if e.errno != errno.ENOENT:
            raise


# -- record text ----------------------------------------------------------------------------------
# Kernel records are `audit(SECS.MS:SERIAL): k=v k=v ...`. The kernel hex-encodes every value that
# holds a space, a quote or a control character (audit_log_untrustedstring), so splitting on
# whitespace and at the first `=` gives exactly the fields; quoted values keep their quotes.


def parse_header(body: bytes) -> tuple[int, int, int] | None:
    """(ts_ns, serial, offset of the first field) of a record, or None when it is not one."""
    if not body.startswith(b"audit("):
        return None
    dot = body.find(b".", 6)
    colon = body.find(b":", dot + 1)
    close = body.find(b")", colon + 1)
    if dot < 0 or colon < 0 or close < 0:
        return None
    try:
        ts_ns = int(body[6:dot]) * 1_000_000_000 + int(body[dot + 1 : colon]) * 1_000_000
        serial = int(body[colon + 1 : close])
    except ValueError:
        return None
    start = close + 2 if body[close + 1 : close + 2] == b":" else close + 1
    return ts_ns, serial, start


def split_fields(text: bytes) -> dict[bytes, bytes]:
    """`k=v k=v` -> {k: v}, keys and values as bytes (values keep their quotes)."""
    # An enriched user-space suffix (after 0x1d) is not part of kernel records; drop it anyway.
    text = text.split(b"\x1d", 1)[0].rstrip(b"\0\n")
    out: dict[bytes, bytes] = {}
    for item in text.split():
        key, eq, value = item.partition(b"=")
        if eq:
            out[key] = value
    return out


def parse_record(body: bytes) -> tuple[int, int, dict[str, bytes]] | None:
    """(ts_ns, serial, raw fields) of one record body; values keep their quotes."""
    head = parse_header(body)
    if head is None:
        return None
    ts_ns, serial, start = head
    return ts_ns, serial, {k.decode(): v for k, v in split_fields(body[start:]).items()}


def record_serial(body: bytes) -> int | None:
    head = parse_header(body)
    return head[1] if head else None


_HEXVALUE = re.compile(rb"^[0-9A-F]+$")


def decode_value(raw: bytes | None, *, hex_allowed: bool = True) -> str | None:
    """A field value as text: quoted strings verbatim, `(null)` as None, hex decoded."""
    if raw is None or raw in (b"(null)", b"(none)"):
        return None
    if raw.startswith(b'"') and raw.endswith(b'"') and len(raw) >= 2:
        return raw[1:-1].decode(errors="surrogateescape")
    if hex_allowed and len(raw) % 2 == 0 and _HEXVALUE.match(raw):
        return binascii.unhexlify(raw).decode(errors="surrogateescape")
    return raw.decode(errors="surrogateescape")


def decode_argv(fields: Mapping[str, bytes] | Mapping[bytes, bytes]) -> list[str]:
    """EXECVE `argc`, `aN` and the split form `aN_len`/`aN[k]` for long arguments.

    Keys may be str (`parse_record`) or bytes (`split_fields`).
    """
    get = cast("Mapping[object, bytes]", fields).get
    as_bytes = any(isinstance(k, bytes) for k in fields)

    def key(text: str) -> object:
        return text.encode() if as_bytes else text

    try:
        argc = int(get(key("argc"), b"0"))
    except ValueError:
        return []
    argv = []
    for i in range(argc):
        whole = get(key(f"a{i}"))
        if whole is not None:
            argv.append(decode_value(whole) or "")
            continue
        chunks = []
        k = 0
        while (part := get(key(f"a{i}[{k}]"))) is not None:
            chunks.append(decode_value(part) or "")
            k += 1
        argv.append("".join(chunks))
    return argv


def decode_sockaddr(raw: bytes | None) -> tuple[int, str, int] | None:
    """(family, address, port) of an AF_INET/AF_INET6 SOCKADDR `saddr` hex value, else None."""
    if not raw:
        return None
    try:
        data = binascii.unhexlify(raw)
    except (binascii.Error, ValueError):
        return None
    if len(data) < 2:
        return None
    family = struct.unpack_from("=H", data)[0]
    if family == socket.AF_INET and len(data) >= 8:
        return family, socket.inet_ntop(socket.AF_INET, data[4:8]), struct.unpack_from(">H", data, 2)[0]
    if family == socket.AF_INET6 and len(data) >= 24:
        return family, socket.inet_ntop(socket.AF_INET6, data[8:24]), struct.unpack_from(">H", data, 2)[0]
    return None
