"""Load Sigma YAML files into compiled rules, correlation rules and a list of rejections.

Every rule of every file ends up either compiled or in ``rejections`` with its file, line, id,
title and the precise reason; nothing is dropped silently. Files are compiled one by one through
the rule cache (``vigil.engine.rule_cache``): a file seen before with the same bytes, path, options
and front-end code is read back as vigil's IR, and pySigma is not even imported when every file
is. Sets with correlation rules are compiled at once (their references resolve across files).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vigil.engine.rule_cache import rule_cache_directory
from vigil.engine.sigma.cache import DirectoryPacks
from vigil.engine.sigma.errors import Rejection
from vigil.engine.sigma.options import CompileOptions
from vigil.engine.sigma.results import FileResult, SigmaRuleSet

if TYPE_CHECKING:
    from vigil.engine.sigma.parsing import _Parsed

__all__ = [
    "SIGMA_SUFFIXES",
    "Rejection",
    "SigmaRuleSet",
    "file_results",
    "holds_correlations",
    "load_sigma",
    "load_sigma_files",
    "load_sigma_text",
    "read_source",
]

logger = logging.getLogger(__name__)

SIGMA_SUFFIXES = (".yml", ".yaml")
_CORRELATION_KEY = re.compile(rb"^correlation\s*:", re.MULTILINE)


def holds_correlations(data: bytes) -> bool:
    """Whether a rule file has a top-level ``correlation:`` key (block style; the loader also
    notices flow-style ones after parsing)."""
    return b"correlation" in data and _CORRELATION_KEY.search(data) is not None


def load_sigma_text(text: str, path: str = "<string>", opts: CompileOptions | None = None) -> SigmaRuleSet:
    """Compile the Sigma rules of one YAML text (one or several documents)."""
    from vigil.engine.sigma.parsing import compile_collections, parse

    return compile_collections([parse(text, path)], opts)


def _files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.suffix in SIGMA_SUFFIXES and f.is_file()))
        else:
            files.append(p)
    return files


@dataclass
class _Source:
    """A rule file as read: its bytes and text, or why it could not be read."""

    path: str
    data: bytes = b""
    text: str | None = None
    problem: Rejection | None = None

    def parsed(self) -> _Parsed:
        from vigil.engine.sigma.parsing import _Parsed, parse

        if self.problem is not None or self.text is None:
            return _Parsed(self.path, None, [], self.problem)
        return parse(self.text, self.path)


def read_source(f: Path) -> _Source:
    """A rule file's bytes and text (universal newlines), or why it cannot be read."""
    path = str(f)
    try:
        data = f.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return _Source(path, problem=Rejection(path, 0, None, None, "parse", f"cannot read: {e}"))
    if "\r" in text:  # universal newlines, as text-mode reading gives
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _Source(path, data, text)


def load_sigma(
    paths: Iterable[str | Path], opts: CompileOptions | None = None, *, use_cache: bool = True
) -> SigmaRuleSet:
    """Compile every Sigma file under ``paths`` (files, or directories walked for .yml/.yaml).

    Correlation rules may reference rules of any of the files. Files without correlation rules
    go through the rule cache (``docs/sigma.md``) unless ``use_cache`` is false or the cache is
    turned off; the result is the same either way.
    """
    packs = DirectoryPacks(opts) if use_cache and rule_cache_directory() is not None else None
    try:
        return load_sigma_files(_files(paths), opts, packs)
    finally:
        if packs is not None:
            packs.flush()


def load_sigma_files(
    files: Iterable[Path], opts: CompileOptions | None, packs: DirectoryPacks | None
) -> SigmaRuleSet:
    """``load_sigma`` over a list of files, looking them up in (and recording them to) ``packs``."""
    sources = [read_source(f) for f in files]
    results = file_results(sources, opts, packs)
    if results is None:
        return _compile_all(sources, opts)
    merged = SigmaRuleSet()
    for result in results:
        merged.rejections.extend(result.file_rejections)
    for result in results:
        merged.rules.extend(result.rules)
        merged.rejections.extend(result.rule_rejections)
    return merged


def file_results(
    sources: list[_Source], opts: CompileOptions | None, packs: DirectoryPacks | None
) -> list[FileResult] | None:
    """Each file compiled alone (from ``packs`` when there, the others on several cores when
    many), or None when the files hold correlation rules (they compile together)."""
    if any(holds_correlations(s.data) for s in sources):
        return None
    results: list[FileResult | None] = [None] * len(sources)
    keys: dict[int, str] = {}
    for i, source in enumerate(sources):
        if packs is not None and source.problem is None:
            keys[i], results[i] = packs.lookup(source.path, source.data)
    misses = [i for i, r in enumerate(results) if r is None]
    compiled = _compile_files([sources[i] for i in misses], opts)
    for i, result in zip(misses, compiled, strict=True):
        if result is None:  # correlation rules the quick search missed (e.g. flow style)
            return None
        results[i] = result
        if packs is not None and i in keys:
            packs.record(sources[i].path, keys[i], result)
    return results  # type: ignore[return-value]


def _compile_files(sources: list[_Source], opts: CompileOptions | None) -> list[FileResult | None]:
    if not sources:
        return []  # all from the cache: pySigma is not even imported
    from vigil.engine.sigma.parallel import compile_in_parallel
    from vigil.engine.sigma.parsing import compile_file

    jobs = [(s.text, s.path, s.problem) for s in sources]
    results = compile_in_parallel(jobs, opts)
    if results is None:
        results = [compile_file(text, path, problem, opts) for text, path, problem in jobs]
    return results


def _compile_all(sources: list[_Source], opts: CompileOptions | None) -> SigmaRuleSet:
    from vigil.engine.sigma.parsing import compile_collections

    return compile_collections([s.parsed() for s in sources], opts)
