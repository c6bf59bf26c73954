"""What each action needs and whether this machine has it (for ``vigil agent doctor``)."""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass

from vigil.agent.actions import _fanotify as fan
from vigil.agent.actions.memdump import supported_architectures


@dataclass(frozen=True, slots=True)
class Availability:
    """``name`` is usable when ``available``; ``reason`` says why not, or what it relies on."""

    name: str
    available: bool
    reason: str


def _fanotify(flags: int) -> tuple[bool, str]:
    try:
        fd = fan.init(flags | fan.FAN_CLOEXEC)
    except OSError as exc:
        return False, f"fanotify_init: {exc.strerror} (needs CAP_SYS_ADMIN)"
    os.close(fd)
    return True, "fanotify"


def check_actions() -> list[Availability]:
    """Probe every action without side effects (a fanotify group is opened and closed at once)."""
    out = []
    pidfd = hasattr(os, "pidfd_open")
    out.append(Availability("kill", pidfd, "pidfd_open + pidfd_send_signal" if pidfd else "needs Linux 5.3+"))
    ok, why = _fanotify(fan.FAN_CLASS_CONTENT)
    out.append(Availability("blacklist", ok, f"{why} exec permission marks + kill-at-exec" if ok else why))
    arch = platform.machine()
    mem = os.access("/proc/self/mem", os.R_OK) and arch in supported_architectures()
    out.append(
        Availability(
            "memdump", mem, "/proc/PID/mem to ELF core" if mem else f"unsupported architecture {arch}"
        )
    )
    out.append(Availability("filedump", True, "copies through /proc/PID/exe and open()"))
    osq = shutil.which("osqueryi")
    out.append(
        Availability("report", True, "osqueryi found" if osq else "osqueryi not installed: no osquery tables")
    )
    out.append(Availability("brief", True, "/proc inventory"))
    nft = shutil.which("nft")
    out.append(
        Availability("contain", nft is not None, "nft found" if nft else "nft not found: install nftables")
    )
    ok, why = _fanotify(fan.FAN_CLASS_CONTENT)
    out.append(
        Availability("canaries", True, "fanotify (names the process)" if ok else f"inotify only ({why})")
    )
    return out
