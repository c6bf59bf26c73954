"""Load Sigma YAML files into compiled rules, correlation rules and a list of rejections.

Every rule of every file ends up either compiled or in ``rejections`` with its file, line, id,
title and the precise reason; nothing is dropped silently. YAML documents are split by hand so
each rule knows the line it starts on (pySigma models locations but does not fill them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.rule import SigmaRule

from vigil.engine.rule_cache import RuleStore, open_rule_store
from vigil.engine.sigma.codec import FORMAT as CODEC_FORMAT
from vigil.engine.sigma.codec import CacheFormatError, FileResult, decode_file_result, encode_file_result
from vigil.engine.sigma.compiler import CompiledRule, compile_rule, sigma_error_message
from vigil.engine.sigma.correlation import CorrelationRuleIR, compile_correlation
from vigil.engine.sigma.errors import Rejection, SigmaFrontEndError, SigmaParseError
from vigil.engine.sigma.values import CompileOptions

__all__ = ["SIGMA_SUFFIXES", "Rejection", "SigmaRuleSet", "cache_key", "load_sigma", "load_sigma_text"]

logger = logging.getLogger(__name__)

SIGMA_SUFFIXES = (".yml", ".yaml")
_DOC_SEPARATOR = re.compile(r"^---\s*$", re.MULTILINE)
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CORRELATION_KEY = re.compile(rb"^correlation\s*:", re.MULTILINE)


@dataclass
class SigmaRuleSet:
    """What a set of Sigma files compiled to."""

    rules: list[CompiledRule] = field(default_factory=list)
    correlations: list[CorrelationRuleIR] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.rules) + len(self.correlations) + len(self.rejections)

    def extend(self, other: SigmaRuleSet) -> None:
        self.rules.extend(other.rules)
        self.correlations.extend(other.correlations)
        self.rejections.extend(other.rejections)


def _documents(text: str) -> list[tuple[int, str]]:
    """(start line, text) of each YAML document of a file."""
    docs: list[tuple[int, str]] = []
    start, line = 0, 1
    for m in _DOC_SEPARATOR.finditer(text):
        docs.append((line, text[start : m.start()]))
        line = text.count("\n", 0, m.end()) + 2
        start = m.end() + 1
    docs.append((line, text[start:]))
    return [(ln, body) for ln, body in docs if body.strip() and not _only_comments(body)]


def _only_comments(body: str) -> bool:
    return all(not ln.strip() or ln.lstrip().startswith("#") for ln in body.splitlines())


def load_sigma_text(text: str, path: str = "<string>", opts: CompileOptions | None = None) -> SigmaRuleSet:
    """Compile the Sigma rules of one YAML text (one or several documents)."""
    return _compile_collections([_parse(text, path)], opts)


@dataclass
class _Parsed:
    path: str
    collection: SigmaCollection | None
    lines: list[int]
    rejection: Rejection | None = None


def _parse(text: str, path: str) -> _Parsed:
    try:
        docs = _documents(text)
        dicts = [yaml.load(body, Loader=_Loader) for _, body in docs]  # noqa: S506 (safe loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        return _Parsed(path, None, [], Rejection(path, line, None, None, "parse", f"invalid YAML: {e}"))
    for (ln, _), d in zip(docs, dicts, strict=True):
        if d is not None and not isinstance(d, dict):
            reason = (
                f"YAML document is a {type(d).__name__}, not a Sigma rule (a mapping: title, logsource, ...)"
            )
            return _Parsed(path, None, [], Rejection(path, ln, None, None, "parse", reason))
    lines = [
        ln
        for (ln, _), d in zip(docs, dicts, strict=True)
        if isinstance(d, dict) and d.get("action") in (None, "repeat")
    ]
    try:
        collection = SigmaCollection.from_dicts(
            dicts, collect_errors=True, source=SigmaRuleLocation(Path(path)), resolve_references=False
        )
    except SigmaError as e:
        return _Parsed(path, None, [], Rejection(path, 1, None, None, "parse", sigma_error_message(e)))
    except (TypeError, AttributeError, ValueError) as e:
        return _Parsed(path, None, [], Rejection(path, 1, None, None, "parse", f"not a Sigma rule file: {e}"))
    return _Parsed(path, collection, lines)


def _file_level(
    p: _Parsed,
) -> tuple[list[tuple[SigmaRule | SigmaCorrelationRule, str, int]], list[Rejection]]:
    """The rules of one parsed file (with path and line) and its whole-file rejections."""
    if p.rejection is not None:
        return [], [p.rejection]
    assert p.collection is not None
    rules = [
        (rule, p.path, p.lines[i] if i < len(p.lines) else 0) for i, rule in enumerate(p.collection.rules)
    ]
    rejections = [
        Rejection(p.path, 1, None, None, "parse", sigma_error_message(err))
        for err in p.collection.errors
        if not any(err in r.errors for r in p.collection.rules)
    ]
    return rules, rejections


def _compile_rules(
    rules: Sequence[tuple[SigmaRule | SigmaCorrelationRule, str, int]],
    opts: CompileOptions | None,
    out: list[CompiledRule],
    rejections: list[Rejection],
) -> None:
    for rule, path, line in rules:
        if isinstance(rule, SigmaRule):
            try:
                out.append(compile_rule(rule, opts, path=path, line=line))
            except SigmaFrontEndError as e:
                rejections.append(_rejection(e, path, line))


def _compile_collections(parsed: Sequence[_Parsed], opts: CompileOptions | None) -> SigmaRuleSet:
    result = SigmaRuleSet()
    all_rules: list[tuple[SigmaRule | SigmaCorrelationRule, str, int]] = []
    for p in parsed:
        rules, rejections = _file_level(p)
        all_rules.extend(rules)
        result.rejections.extend(rejections)
    _compile_rules(all_rules, opts, result.rules, result.rejections)
    correlations = [(r, p, ln) for r, p, ln in all_rules if isinstance(r, SigmaCorrelationRule)]
    if correlations:
        collection = SigmaCollection([r for r, _, _ in all_rules], resolve_references=False)
        for rule, path, line in correlations:
            try:
                if rule.errors:
                    raise SigmaParseError("; ".join(sigma_error_message(e) for e in rule.errors))
                rule.resolve_rule_references(collection)
                result.correlations.append(compile_correlation(rule, path=path, line=line))
            except SigmaFrontEndError as e:
                rid = str(rule.id) if rule.id else None
                rej = _rejection(e.located(path=path, rule_id=rid, title=rule.title), path, line)
                result.rejections.append(dataclasses.replace(rej, correlation=True))
            except SigmaError as e:
                rid = str(rule.id) if rule.id else None
                reason = sigma_error_message(e)
                result.rejections.append(
                    Rejection(path, line, rid, rule.title, "parse", reason, correlation=True)
                )
    return result


def _rejection(e: SigmaFrontEndError, path: str, line: int) -> Rejection:
    return Rejection(e.path or path, line, e.rule_id, e.title, e.kind, e.reason)


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
        if self.problem is not None or self.text is None:
            return _Parsed(self.path, None, [], self.problem)
        return _parse(self.text, self.path)


def _read(f: Path) -> _Source:
    path = str(f)
    try:
        data = f.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return _Source(path, problem=Rejection(path, 0, None, None, "parse", f"cannot read: {e}"))
    if "\r" in text:  # universal newlines, as text-mode reading gives
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _Source(path, data, text)


def _compile_file(source: _Source, opts: CompileOptions | None) -> FileResult | None:
    """One file compiled alone, or None when it holds correlation rules (they resolve across files)."""
    parsed = source.parsed()
    rules, file_rejections = _file_level(parsed)
    if any(isinstance(r, SigmaCorrelationRule) for r, _, _ in rules):
        return None
    result = FileResult([], file_rejections, [])
    _compile_rules(rules, opts, result.rules, result.rule_rejections)
    return result


def load_sigma(
    paths: Iterable[str | Path], opts: CompileOptions | None = None, *, use_cache: bool = True
) -> SigmaRuleSet:
    """Compile every Sigma file under ``paths`` (files, or directories walked for .yml/.yaml).

    Correlation rules may reference rules of any of the files. Files without correlation rules
    are compiled one by one through the rule cache (``vigil.engine.rule_cache``, see
    ``docs/sigma.md``) unless ``use_cache`` is false or the cache is turned off; the result is the
    same either way.
    """
    sources = [_read(f) for f in _files(paths)]
    if any(_CORRELATION_KEY.search(s.data) for s in sources):
        return _compile_collections([s.parsed() for s in sources], opts)
    store = open_rule_store() if use_cache else None
    try:
        results: list[FileResult] = []
        for source in sources:
            result = _cached_file(source, opts, store)
            if result is None:  # correlation rules the quick search missed (e.g. flow style)
                return _compile_collections([s.parsed() for s in sources], opts)
            results.append(result)
    finally:
        if store is not None:
            store.close()
    merged = SigmaRuleSet()
    for result in results:
        merged.rejections.extend(result.file_rejections)
    for result in results:
        merged.rules.extend(result.rules)
        merged.rejections.extend(result.rule_rejections)
    return merged


def _cached_file(source: _Source, opts: CompileOptions | None, store: RuleStore | None) -> FileResult | None:
    if store is None or source.problem is not None:
        return _compile_file(source, opts)
    key = cache_key(source.path, source.data, opts)
    value = store.get(key)
    if value is not None:
        try:
            return decode_file_result(value)
        except CacheFormatError as err:
            logger.debug("rule cache: entry for %s unusable (%s): compiling it", source.path, err)
    result = _compile_file(source, opts)
    if result is not None:
        store.put(key, encode_file_result(result))
    return result


_code_digest: str | None = None


def _code_fingerprint() -> str:
    """Digest of the code whose output the cache keeps: this front end, the IR, pySigma, RE2."""
    global _code_digest
    if _code_digest is None:
        h = hashlib.sha256()
        here = Path(__file__).resolve().parent
        for module in [*sorted(here.glob("*.py")), here.parent / "ir.py"]:
            h.update(module.name.encode() + b"\0")
            try:
                h.update(module.read_bytes())
            except OSError:
                h.update(b"?")
        for dist in ("vigil", "pysigma", "google-re2", "pyyaml"):
            try:
                version = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                version = "-"
            h.update(f"\0{dist}={version}".encode())
        h.update(f"\0codec={CODEC_FORMAT}".encode())
        _code_digest = h.hexdigest()
    return _code_digest


def cache_key(path: str, data: bytes, opts: CompileOptions | None) -> str:
    """The rule-cache key of a file: its bytes, its path (reports name it), the compile options
    and the code that compiles it."""
    placeholders = {k: list(v) for k, v in (opts or CompileOptions()).placeholders.items()}
    h = hashlib.sha256(b"vigil-sigma\0")
    h.update(_code_fingerprint().encode())
    h.update(json.dumps(placeholders, sort_keys=True, default=repr).encode())
    h.update(b"\0" + os.fsencode(path) + b"\0")
    h.update(hashlib.sha256(data).digest())
    return h.hexdigest()
