"""System information for ``POST /info/system`` (WHIDS ``SystemInfo``, Linux fields)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import vigil

__all__ = ["system_info"]


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace").strip()
    except OSError:
        return ""


def _os_release() -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in _read("/etc/os-release").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value.strip().strip('"')
    return fields


def _cpu_name() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _virtual() -> bool:
    if "hypervisor" in _read("/proc/cpuinfo"):
        return True
    product = _read("/sys/class/dmi/id/product_name").lower()
    return any(v in product for v in ("kvm", "qemu", "virtual", "vmware", "firecracker"))


def system_info() -> dict[str, Any]:
    release = _os_release()
    uname = os.uname()
    return {
        "edr": {"version": vigil.__version__, "commit": ""},
        "system": {
            "manufacturer": _read("/sys/class/dmi/id/sys_vendor"),
            "name": _read("/sys/class/dmi/id/product_name"),
            "virtual": _virtual(),
        },
        "bios": {
            "version": _read("/sys/class/dmi/id/bios_version"),
            "date": _read("/sys/class/dmi/id/bios_date"),
        },
        "os": {
            "name": uname.sysname,
            "build": uname.release,
            "version": release.get("VERSION_ID", ""),
            "product": release.get("PRETTY_NAME", ""),
            "edition": release.get("ID", ""),
        },
        "cpu": {"name": _cpu_name(), "count": os.cpu_count() or 0},
        "error": "",
    }
