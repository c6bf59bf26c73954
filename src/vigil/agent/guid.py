"""Stable process GUIDs.

A ProcessGuid must never collide when a pid is reused and must be the same for one process every
time the agent computes it (also after an agent restart). The triple (boot id, pid, start time in
clock ticks since boot) identifies one process for the lifetime of a boot, so the GUID is a
name-based UUID (v5) of that triple, written in Sysmon's `{...}` form.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
import uuid

logger = logging.getLogger(__name__)

ZERO_GUID = "{00000000-0000-0000-0000-000000000000}"
_NAMESPACE = uuid.UUID("6b1f0f3c-7a55-4b1e-9d62-5f1b2b8f0a11")
_NAMESPACE_BYTES = _NAMESPACE.bytes
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@functools.cache
def boot_id() -> str:
    """The kernel's random boot id; falls back to a constant outside Linux."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        logger.warning("no /proc/sys/kernel/random/boot_id: process GUIDs are not unique across boots")
        return "unknown-boot"


def process_guid(pid: int, start_ticks: int, boot: str | None = None) -> str:
    """`{uuid}` for the process `pid` started `start_ticks` clock ticks after boot."""
    name = f"{boot or boot_id()}/{pid}/{start_ticks}"
    # uuid.uuid5 without building a UUID object (one per new process): SHA-1 of namespace + name,
    # version 5 and the RFC 4122 variant set
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{{{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}}}"


def start_ticks_of(pid: int) -> int | None:
    """Field 22 (starttime) of /proc/PID/stat, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


try:
    _BOOT_OFFSET_NS = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - time.monotonic_ns()
except (AttributeError, OSError):
    _BOOT_OFFSET_NS = 0


def ticks_from_monotonic_ns(ts_ns: int) -> int:
    """Convert a CLOCK_MONOTONIC timestamp (cn_proc) to clock ticks since boot.

    /proc's starttime counts CLOCK_BOOTTIME (which includes suspend); the offset between the two
    clocks is taken once at import. Saves a /proc read per fork.
    """
    return (ts_ns + _BOOT_OFFSET_NS) * CLOCK_TICKS // 1_000_000_000
