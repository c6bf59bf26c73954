"""Read the default rule files as plain metadata: names, criticalities, ATT&CK, descriptions.

This is for listings and documentation (``docs/default-rules.md``, the console), not for matching:
matching always goes through ``vigil.engine``. A ``.gen`` file is a stream of JSON objects (gene
§1.1), so the reader walks it with ``raw_decode`` and reports the line of any object it cannot read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil.rules import default_rule_files

__all__ = ["AttackRef", "RuleFileError", "RuleInfo", "load_catalog", "read_rule_objects"]


class RuleFileError(ValueError):
    """A rule file that is not a stream of JSON objects; carries the file and line."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line


@dataclass(frozen=True, slots=True)
class AttackRef:
    id: str
    tactic: str
    description: str
    reference: str


@dataclass(frozen=True, slots=True)
class RuleInfo:
    name: str
    file: str
    criticality: int
    description: str
    attack: tuple[AttackRef, ...]
    events: dict[str, tuple[int, ...]]
    tags: tuple[str, ...]


def read_rule_objects(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Every JSON object of a rule file with the line it starts on."""
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    objects: list[tuple[int, dict[str, Any]]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return objects
        line = text.count("\n", 0, pos) + 1
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise RuleFileError(path, line, f"not a JSON object: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise RuleFileError(path, line, f"expected a rule object, got {type(obj).__name__}")
        objects.append((line, obj))


def _info(path: Path, line: int, obj: dict[str, Any]) -> RuleInfo:
    meta = obj.get("Meta")
    if not isinstance(meta, dict):
        raise RuleFileError(path, line, f"rule {obj.get('Name')!r} has no Meta object")
    attack = tuple(
        AttackRef(a.get("ID", ""), a.get("Tactic", ""), a.get("Description", ""), a.get("Reference", ""))
        for a in meta.get("ATTACK") or []
    )
    events = {str(ch): tuple(int(i) for i in ids) for ch, ids in (meta.get("Events") or {}).items()}
    return RuleInfo(
        name=str(obj.get("Name", "")),
        file=path.name,
        criticality=int(meta.get("Criticality", 0)),
        description=str(meta.get("Description", "")),
        attack=attack,
        events=events,
        tags=tuple(obj.get("Tags") or ()),
    )


def load_catalog(files: list[Path] | None = None) -> list[RuleInfo]:
    """Metadata of every rule in ``files`` (default: the shipped rule set), in file order."""
    infos: list[RuleInfo] = []
    for path in files if files is not None else default_rule_files():
        infos.extend(_info(path, line, obj) for line, obj in read_rule_objects(path))
    return infos
