"""Load Sigma YAML files into compiled rules, correlation rules and a list of rejections.

Every rule of every file ends up either compiled or in ``rejections`` with its file, line, id,
title and the precise reason; nothing is dropped silently. YAML documents are split by hand so
each rule knows the line it starts on (pySigma models locations but does not fill them).
"""

from __future__ import annotations

import dataclasses
import logging
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

from vigil.engine.sigma.compiler import CompiledRule, compile_rule, sigma_error_message
from vigil.engine.sigma.correlation import CorrelationRuleIR, compile_correlation
from vigil.engine.sigma.errors import SigmaFrontEndError, SigmaParseError
from vigil.engine.sigma.values import CompileOptions

__all__ = ["SIGMA_SUFFIXES", "Rejection", "SigmaRuleSet", "load_sigma", "load_sigma_text"]

logger = logging.getLogger(__name__)

SIGMA_SUFFIXES = (".yml", ".yaml")
_DOC_SEPARATOR = re.compile(r"^---\s*$", re.MULTILINE)
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A rule (or a whole file) that did not compile, and why."""

    path: str
    line: int
    rule_id: str | None
    title: str | None
    kind: str
    reason: str
    #: the rejected rule is a correlation rule.
    correlation: bool = False

    def __str__(self) -> str:
        rule = f" rule {self.title!r}" if self.title else ""
        rid = f" ({self.rule_id})" if self.rule_id else ""
        return f"{self.path}:{self.line}:{rule}{rid}: [{self.kind}] {self.reason}"


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


def _compile_collections(parsed: Sequence[_Parsed], opts: CompileOptions | None) -> SigmaRuleSet:
    result = SigmaRuleSet()
    all_rules: list[tuple[SigmaRule | SigmaCorrelationRule, str, int]] = []
    for p in parsed:
        if p.rejection is not None:
            result.rejections.append(p.rejection)
            continue
        assert p.collection is not None
        for i, rule in enumerate(p.collection.rules):
            line = p.lines[i] if i < len(p.lines) else 0
            all_rules.append((rule, p.path, line))
        for err in p.collection.errors:
            if not any(err in r.errors for r in p.collection.rules):
                result.rejections.append(Rejection(p.path, 1, None, None, "parse", sigma_error_message(err)))
    for rule, path, line in all_rules:
        if isinstance(rule, SigmaRule):
            try:
                result.rules.append(compile_rule(rule, opts, path=path, line=line))
            except SigmaFrontEndError as e:
                result.rejections.append(_rejection(e, path, line))
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


def load_sigma(paths: Iterable[str | Path], opts: CompileOptions | None = None) -> SigmaRuleSet:
    """Compile every Sigma file under ``paths`` (files, or directories walked for .yml/.yaml).

    Correlation rules may reference rules of any of the files.
    """
    parsed: list[_Parsed] = []
    for f in _files(paths):
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            parsed.append(
                _Parsed(str(f), None, [], Rejection(str(f), 0, None, None, "parse", f"cannot read: {e}"))
            )
            continue
        parsed.append(_parse(text, str(f)))
    return _compile_collections(parsed, opts)
