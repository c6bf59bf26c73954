"""vigil's default Linux rule set, shipped as package data.

The rules are Gene (schema 2.0.0) rule files in ``default/``, one file per theme (execution,
persistence, credential access...). They match Linux events in the Sysmon-for-Linux shape
(channel ``Linux-Sysmon/Operational``) and vigil's own events (channel ``Vigil/Operational``).
``docs/default-rules.md`` lists every rule with its ATT&CK mapping and criticality.
"""

from __future__ import annotations

import glob
import os
from importlib import resources
from pathlib import Path

__all__ = [
    "DEFAULT_RULES_PACKAGE",
    "WATCH_PATH_CANDIDATES",
    "default_rule_files",
    "default_rules_path",
    "default_watch_paths",
]

#: Package (directory) that holds the default ``.gen`` files.
DEFAULT_RULES_PACKAGE = "vigil.rules.default"


def default_rules_path() -> Path:
    """Directory of the default rule set, ready for ``Engine.load_path``."""
    path = Path(str(resources.files(DEFAULT_RULES_PACKAGE)))
    if not path.is_dir():
        raise FileNotFoundError(f"default rule directory missing from the installed package: {path}")
    return path


def default_rule_files() -> list[Path]:
    """The default ``.gen`` files, sorted by name (the order a directory load uses)."""
    return sorted(default_rules_path().glob("*.gen"))


#: Directories (glob patterns) whose file creations and deletions the default FileCreate/FileDelete
#: rules look at: cron, systemd units, shell profiles, authorized_keys, sudoers, PAM, rc scripts,
#: ld.so.preload (all under /etc, the homes or the unit/PAM directories), temp directories and logs.
WATCH_PATH_CANDIDATES: tuple[str, ...] = (
    "/etc",
    "/root",
    "/home",
    "/tmp",  # noqa: S108 - watched, not written
    "/var/tmp",  # noqa: S108
    "/dev/shm",  # noqa: S108
    "/var/spool/cron",
    "/var/log",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/*/security",
    "/lib/*/security",
    "/usr/lib64/security",
    "/lib64/security",
)


def default_watch_paths(candidates: tuple[str, ...] = WATCH_PATH_CANDIDATES) -> list[str]:
    """The agent ``watch_paths`` the default rules need, as they exist on this host.

    Globs are expanded, paths resolved (``/lib`` is ``/usr/lib`` on merged-/usr systems) and a
    directory inside another listed one is dropped, since watching is recursive. Watching /home
    recursively costs one mark per directory; trim the list on hosts with huge home trees.
    """
    found: list[str] = []
    for pattern in candidates:
        for match in sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]:
            if os.path.isdir(match):
                real = os.path.realpath(match)
                if real not in found:
                    found.append(real)
    return [p for p in found if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in found)]
