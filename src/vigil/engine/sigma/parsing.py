"""YAML text -> pySigma objects -> compiled rules: the work the rule cache saves.

YAML documents are split by hand so each rule knows the line it starts on (pySigma models
locations but does not fill them). A file compiled alone (:func:`compile_file`) gives the same rules
and rejections as when compiled with others, except for correlation rules, which resolve across
files (:func:`compile_collections`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.rule import SigmaRule

from vigil.engine.sigma.compiler import compile_rule, sigma_error_message
from vigil.engine.sigma.correlation import compile_correlation
from vigil.engine.sigma.errors import Rejection, SigmaFrontEndError, SigmaParseError
from vigil.engine.sigma.options import CompileOptions
from vigil.engine.sigma.results import CompiledRule, FileResult, SigmaRuleSet

__all__ = ["compile_collections", "compile_file", "parse"]

_DOC_SEPARATOR = re.compile(r"^---\s*$", re.MULTILINE)
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


@dataclass
class _Parsed:
    path: str
    collection: SigmaCollection | None
    lines: list[int]
    rejection: Rejection | None = None


def parse(text: str, path: str) -> _Parsed:
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


def compile_collections(parsed: Sequence[_Parsed], opts: CompileOptions | None) -> SigmaRuleSet:
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


def compile_file(
    text: str | None, path: str, problem: Rejection | None, opts: CompileOptions | None
) -> FileResult | None:
    """One file compiled alone, or None when it holds correlation rules (they resolve across files)."""
    parsed = _Parsed(path, None, [], problem) if problem is not None or text is None else parse(text, path)
    rules, file_rejections = _file_level(parsed)
    if any(isinstance(r, SigmaCorrelationRule) for r, _, _ in rules):
        return None
    result = FileResult([], file_rejections, [])
    _compile_rules(rules, opts, result.rules, result.rule_rejections)
    return result
