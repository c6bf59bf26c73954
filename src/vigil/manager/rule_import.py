"""Import a rule directory into the manager's database: Gene (``.gen``/``.gene``) and Sigma
(``.yml``/``.yaml``) files side by side, as WHIDS' ``manager -import DIR`` does for Gene rules.

Everything is validated as the admin API validates an upload (each Gene rule compiled, the whole
resulting Sigma set compiled with the stored one) and one error stores nothing. The running
manager reads its rule caches at start: import with the manager stopped, or use the admin API.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from vigil.engine.loader import GENE_EXTENSIONS, walk
from vigil.manager.rules import compile_errors
from vigil.manager.sigma_rules import SIGMA_UNAVAILABLE, UNSUPPORTED_KINDS, check_sigma_upload
from vigil.manager.state import Manager

__all__ = ["ImportResult", "import_rules"]

SIGMA_EXTENSIONS = (".yml", ".yaml")


@dataclass
class ImportResult:
    gene: int = 0
    sigma: int = 0
    errors: list[str] = field(default_factory=list)
    #: Sigma rules left out with ``skip_unsupported`` (log source or construct vigil cannot run).
    skipped: list[str] = field(default_factory=list)


def _files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        out.extend(walk(path) if path.is_dir() else [path])
    return [f for f in out if f.suffix in GENE_EXTENSIONS + SIGMA_EXTENSIONS]


def _json_objects(text: str) -> Iterator[tuple[int, Any, str | None]]:
    """(line, value, error) of each top-level JSON value of a stream (a .gen file); stops at an error."""
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        line = text.count("\n", 0, pos) + 1
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield line, None, f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            return
        yield line, value, None


def _gene_rules(files: list[Path], result: ImportResult) -> list[tuple[str, int, Any]]:
    rules: list[tuple[str, int, Any]] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            result.errors.append(f"{f}: cannot read: {exc}")
            continue
        for line, value, error in _json_objects(text):
            if error is not None:
                result.errors.append(f"{f}:{line}: {error}")
            elif not isinstance(value, dict):
                result.errors.append(f"{f}:{line}: a Gene rule is a JSON object, not {type(value).__name__}")
            else:
                rules.append((str(f), line, value))
    return rules


def _describe(e: dict[str, Any]) -> str:
    rule = f": rule {e['title'] or e['id']!r}" if e["title"] or e["id"] else ""
    return f"{e['file']}:{e['line']}{rule}: [{e['kind']}] {e['message']}"


def import_rules(
    manager: Manager, paths: Iterable[Path], *, update: bool = False, skip_unsupported: bool = False
) -> ImportResult:
    """Validate every rule under ``paths`` and store them all, or store nothing and list the errors.

    With ``skip_unsupported``, Sigma rules whose only errors are a log source or a construct vigil
    cannot run are left out and listed in ``skipped`` (a SigmaHQ checkout then imports); any other
    error still stores nothing.
    """
    result = ImportResult()
    files = _files(paths)
    gene_files = [f for f in files if f.suffix in GENE_EXTENSIONS]
    sigma_files = [f for f in files if f.suffix in SIGMA_EXTENSIONS]
    gene = _gene_rules(gene_files, result)
    cache = manager.rules.sigma
    sigma_sources: list[tuple[str, str]] = []
    for f in sigma_files:
        try:
            sigma_sources.append((str(f), f.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            result.errors.append(f"{f}: cannot read: {exc}")
    if sigma_sources and not cache.available:
        result.errors.append(SIGMA_UNAVAILABLE)
        sigma_sources = []
    gene_names = {r.get("Name") for _, _, r in gene if isinstance(r, dict)} | set(manager.rules.rules)
    upload = None
    if sigma_sources:
        taken = {n for n in gene_names if n}
        upload = check_sigma_upload(sigma_sources, cache.texts, taken, update=update)
        if skip_unsupported and upload.errors:
            docs = {(e["file"], e["document"]) for e in upload.errors}
            other = {(e["file"], e["document"]) for e in upload.errors if e["kind"] not in UNSUPPORTED_KINDS}
            skip = {d for d in docs - other if d[0] != "<stored>"}
            if skip:
                result.skipped = [_describe(e) for e in upload.errors if (e["file"], e["document"]) in skip]
                upload = check_sigma_upload(sigma_sources, cache.texts, taken, update=update, skip=skip)
        result.errors.extend(_describe(e) for e in upload.errors)
    sigma_titles = {d.title for d in upload.documents} if upload else set()
    for source, line, rule in gene:
        taken = set(cache.info) | {t for t in sigma_titles if t}
        for e in compile_errors([rule], source, taken):
            where = f"{source}:{line}"
            rule_name = f": rule {e['rule']!r}" if e["rule"] else ""
            result.errors.append(f"{where}{rule_name}: {e['message']}")
        name = rule.get("Name") if isinstance(rule, dict) else None
        if not update and name in manager.rules.rules:
            result.errors.append(f"{source}:{line}: rule {name!r} is already stored (use --update)")
    names = [r.get("Name") for _, _, r in gene if isinstance(r, dict)]
    dups = sorted({n for n in names if isinstance(n, str) and names.count(n) > 1})
    result.errors.extend(f"Gene rule name {n!r} is used more than once" for n in dups)
    if result.errors:
        return result
    if gene:
        rows = [{"name": r["Name"], "body": orjson.dumps(r).decode()} for _, _, r in gene]
        manager.store.put_rules(rows, update)
        manager.rules.reload()
        result.gene = len(rows)
    if upload is not None and upload.documents:
        manager.store.put_sigma_rules(
            [{"id": d.rule_id, "title": d.title, "kind": d.kind, "body": d.text} for d in upload.documents]
        )
        manager.rules.reload_sigma()
        result.sigma = len(upload.documents)
    return result
