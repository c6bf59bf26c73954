"""vigil's default Linux rule set, shipped as package data.

The rules are Gene (schema 2.0.0) rule files in ``default/``, one file per theme (execution,
persistence, credential access...). They match Linux events in the Sysmon-for-Linux shape
(channel ``Linux-Sysmon/Operational``) and vigil's own events (channel ``Vigil/Operational``).
``docs/default-rules.md`` lists every rule with its ATT&CK mapping and criticality.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["DEFAULT_RULES_PACKAGE", "default_rule_files", "default_rules_path"]

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
