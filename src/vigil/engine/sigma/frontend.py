"""The Sigma front end as an engine loader: ``.yml``/``.yaml`` files in a rule directory load next
to ``.gen`` files (``Engine.load_path``, ``vigil scan --rules``, ``vigil rules check``).

A malformed rule (bad YAML, unknown identifier in the condition...) is a :class:`RuleError`, like
a malformed gene rule. A well-formed rule vigil cannot run (a log source it does not produce, a
construct its IR cannot express) is skipped and reported with a warning naming the file, rule, id
and reason: a SigmaHQ checkout then loads, and nothing is dropped silently. Correlation rules do
not run in the engine: ``correlation_engine_for`` loads them across files for a
:class:`CorrelationEngine`, which reports its own errors.
Results are kept in memory per file (path, inode, size, mtime) so checking then loading compiles
a file once, and on disk by content (``vigil.engine.rule_cache``) so the next process does not
compile it at all; the skipped-rule warnings are logged on every load either way.
"""

from __future__ import annotations

import atexit
import logging
import threading
from pathlib import Path

from vigil.engine.errors import RuleError
from vigil.engine.ir import RuleIR
from vigil.engine.loader import register_loader
from vigil.engine.rule_cache import rule_cache_directory
from vigil.engine.sigma.cache import DirectoryPacks
from vigil.engine.sigma.loader import (
    SIGMA_SUFFIXES,
    SigmaRuleSet,
    file_results,
    holds_correlations,
    load_sigma_files,
    read_source,
)
from vigil.engine.sigma.options import CompileOptions
from vigil.engine.sigma.parallel import MIN_FILES

__all__ = ["configure", "flush_rule_cache", "load_sigma_file"]

logger = logging.getLogger(__name__)

_CACHE: dict[tuple[str, int, int, int], SigmaRuleSet] = {}
_CACHE_SIZE = 8192
_OPTIONS = CompileOptions()
_LOCK = threading.RLock()
_PACKS: DirectoryPacks | None = None  # the on-disk cache during one engine load
_UNREPORTED: set[tuple[str, int, int, int]] = set()  # compiled by prepare_files, not yet loaded


def configure(options: CompileOptions) -> None:
    """Options for the Sigma files the engine loads (e.g. ``expand`` placeholder values)."""
    global _OPTIONS
    flush_rule_cache()
    with _LOCK:
        _OPTIONS = options
        _CACHE.clear()


def _packs() -> DirectoryPacks | None:
    global _PACKS
    if _PACKS is None and rule_cache_directory() is not None:
        _PACKS = DirectoryPacks(_OPTIONS)
    return _PACKS


def flush_rule_cache() -> None:
    """Write what this load added to the on-disk cache (the engine calls it after each load)."""
    global _PACKS
    with _LOCK:
        packs, _PACKS = _PACKS, None
        if packs is not None:
            packs.flush()


def _memo_key(path: Path) -> tuple[str, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)


def _remember(key: tuple[str, int, int, int], result: SigmaRuleSet) -> None:
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
        _UNREPORTED.clear()
    _CACHE[key] = result


def prepare_files(files: list[Path]) -> None:
    """Compile the Sigma files of a load at once (several cores when many are not cached), so
    that ``load_sigma_file`` then finds them compiled. Files with correlation rules are left to it."""
    todo = [(f, k) for f in files if f.suffix in SIGMA_SUFFIXES and (k := _memo_key(f)) is not None]
    if len(todo) < MIN_FILES:
        return  # one by one is as fast
    with _LOCK:
        todo = [(f, k) for f, k in todo if k not in _CACHE]
        sources = [read_source(f) for f, _ in todo]
        picked = [i for i, s in enumerate(sources) if not holds_correlations(s.data)]
        results = file_results([sources[i] for i in picked], _OPTIONS, _packs())
        if results is None:
            return
        for i, result in zip(picked, results, strict=True):
            key = todo[i][1]
            _remember(key, SigmaRuleSet(result.rules, [], [*result.file_rejections, *result.rule_rejections]))
            _UNREPORTED.add(key)


def _compiled(path: Path) -> tuple[SigmaRuleSet, bool]:
    key = _memo_key(path)
    if key is None:
        return load_sigma_files([path], _OPTIONS, None), True
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            fresh = key in _UNREPORTED
            _UNREPORTED.discard(key)
            return cached, fresh
        result = load_sigma_files([path], _OPTIONS, _packs())
        _remember(key, result)
    return result, True


def load_sigma_file(path: Path) -> tuple[list[RuleIR], list[RuleError]]:
    """Engine loader for one Sigma file: its compiled rules and its malformed rules."""
    result, fresh = _compiled(path)
    errors: list[RuleError] = []
    for rej in result.rejections:
        if rej.correlation:
            continue  # resolved across files and reported by correlation_engine_for
        if rej.kind == "parse":
            errors.append(RuleError(rej.path, rej.line, rej.title, None, f"sigma: {rej.reason}"))
        elif fresh:
            logger.warning("sigma rule skipped: %s", rej)
    return [rule.ir for rule in result.rules], errors


for _suffix in SIGMA_SUFFIXES:
    register_loader(_suffix, load_sigma_file, prepare=prepare_files, done=flush_rule_cache)
atexit.register(flush_rule_cache)
