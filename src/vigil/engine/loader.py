"""Rule files on disk: gene's directory walk order, TOML templates, per-extension loaders.

gene loads ``*.toml`` templates first, then rule files, both in the order of its directory walker:
a directory's files sorted by name, then its sub-directories depth-first, the last one first
(spec §1.1). Other front ends (Sigma) plug in with ``register_loader`` for their extensions.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil.engine.errors import RuleError
from vigil.engine.ir import RuleIR

__all__ = [
    "GENE_EXTENSIONS",
    "RawGeneRule",
    "RuleFileLoader",
    "loader_for",
    "loaders_done",
    "loaders_prepare",
    "read_gene_file",
    "read_templates",
    "register_loader",
    "walk",
]

logger = logging.getLogger(__name__)

GENE_EXTENSIONS = (".gen", ".gene")

#: A loader for another rule format: returns the rules of one file and every error found in it.
RuleFileLoader = Callable[[Path], tuple[list[RuleIR], list[RuleError]]]
_LOADERS: dict[str, RuleFileLoader] = {}
_DONE_HOOKS: dict[Callable[[], None], None] = {}
_PREPARE_HOOKS: dict[Callable[[list[Path]], None], None] = {}
_LAZY_FRONT_ENDS = {".yml": "vigil.engine.sigma", ".yaml": "vigil.engine.sigma"}


def register_loader(
    extension: str,
    loader: RuleFileLoader,
    *,
    prepare: Callable[[list[Path]], None] | None = None,
    done: Callable[[], None] | None = None,
) -> None:
    """Make ``Engine.load_path`` load files ending with ``extension`` (e.g. ``.yml``) with ``loader``.

    ``prepare`` gets every file of a load first (e.g. to compile many at once); ``done`` runs once
    the load is over (e.g. to write what a cache learnt).
    """
    _LOADERS[extension.lower()] = loader
    if prepare is not None:
        _PREPARE_HOOKS[prepare] = None
    if done is not None:
        _DONE_HOOKS[done] = None


def loaders_prepare(files: list[Path]) -> None:
    """Show the front ends every file of a load before it is loaded file by file."""
    for suffix in {f.suffix for f in files} & set(_LAZY_FRONT_ENDS):
        loader_for(suffix)  # imports the front end, which registers its hooks
    for hook in list(_PREPARE_HOOKS):
        hook(files)


def loaders_done() -> None:
    """Tell the front ends that a load is over (``Engine.load_path`` and ``check`` call it)."""
    for hook in list(_DONE_HOOKS):
        try:
            hook()
        except Exception:  # a cache that cannot be written must not fail a rule load
            logger.exception("rule loader hook %r failed", hook)


def loader_for(extension: str) -> RuleFileLoader | None:
    ext = extension.lower()
    if ext not in _LOADERS and ext in _LAZY_FRONT_ENDS:
        try:
            __import__(_LAZY_FRONT_ENDS[ext])
        except ImportError as err:
            logger.debug("no loader for %s files: %s", ext, err)
    return _LOADERS.get(ext)


def has_loader(extension: str) -> bool:
    """Whether some front end reads ``extension`` files (without importing it)."""
    ext = extension.lower()
    return ext in _LOADERS or ext in _LAZY_FRONT_ENDS


def walk(root: Path) -> Iterator[Path]:
    """Files under ``root`` in gene's walk order."""
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: os.fsencode(e.name))
        except OSError as err:
            logger.warning("cannot list %s: %s", directory, err)
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            else:
                yield Path(entry.path)


def read_templates(path: Path, templates: dict[str, str], errors: list[RuleError]) -> None:
    """Add the ``name = 'regex'`` pairs of one TOML file (later files override earlier names)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        errors.append(RuleError(str(path), 0, None, None, f"template file: {err}"))
        return
    for name, value in data.items():
        if not isinstance(value, str):
            errors.append(RuleError(str(path), 0, None, name, f"{name} template is not a string"))
            continue
        templates[name] = value


@dataclass(frozen=True, slots=True)
class RawGeneRule:
    file: str
    line: int
    rule: dict[str, Any]


def read_gene_file(path: Path, errors: list[RuleError], data: bytes | None = None) -> list[RawGeneRule]:
    """Decode every rule object of a gene file (its bytes ``data`` when already read); syntax and
    type errors go to ``errors``."""
    from vigil.engine.gene.decode import DecodeError, decode_rule, iter_objects, rule_name

    try:
        text = (path.read_bytes() if data is None else data).decode("utf-8", "replace")
    except OSError as err:
        errors.append(RuleError(str(path), 0, None, None, f"cannot read: {err}"))
        return []
    out: list[RawGeneRule] = []
    for raw in iter_objects(text):
        if raw.error is not None or raw.data is None:
            errors.append(RuleError(str(path), raw.line, None, None, raw.error or "not a rule object"))
            continue
        try:
            rule = decode_rule(raw.data)
        except DecodeError as err:
            errors.append(RuleError(str(path), raw.line, rule_name(raw.data), None, f"json: {err}"))
            continue
        out.append(RawGeneRule(str(path), raw.line, rule))
    return out
