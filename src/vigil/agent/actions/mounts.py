"""Local filesystems from /proc/self/mountinfo: what the exec blocker has to mark."""

from __future__ import annotations

import re
from dataclasses import dataclass

from vigil.agent.actions.errors import InvalidInput

#: filesystems that can hold an executable on a local disk or in memory
LOCAL_FSTYPES = frozenset(
    {
        "ext2",
        "ext3",
        "ext4",
        "xfs",
        "btrfs",
        "f2fs",
        "jfs",
        "reiserfs",
        "vfat",
        "exfat",
        "ntfs3",
        "zfs",
        "tmpfs",
        "ramfs",
        "overlay",
        "squashfs",
    }
)
_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class Mount:
    """One mounted filesystem: its device id, first mount point and type."""

    device: str
    mount_point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str, *, origin: str = "/proc/self/mountinfo") -> list[Mount]:
    """Every mount in a mountinfo text, in order; a malformed line raises InvalidInput naming it."""
    mounts = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            sep = fields.index("-")
            device, mount_point = fields[2], fields[4]
            fstype, source = fields[sep + 1], fields[sep + 2]
        except (ValueError, IndexError) as exc:
            raise InvalidInput(f"{origin}:{lineno}: malformed mountinfo line: {line!r}") from exc
        mounts.append(Mount(device, _unescape(mount_point), fstype, _unescape(source)))
    return mounts


def local_filesystems(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    """One Mount per local superblock (deduplicated by device), shortest mount point first."""
    with open(mountinfo) as f:
        mounts = parse_mountinfo(f.read(), origin=mountinfo)
    by_device: dict[str, Mount] = {}
    for m in mounts:
        if m.fstype not in LOCAL_FSTYPES:
            continue
        seen = by_device.get(m.device)
        if seen is None or len(m.mount_point) < len(seen.mount_point):
            by_device[m.device] = m
    return sorted(by_device.values(), key=lambda m: (len(m.mount_point), m.mount_point))
