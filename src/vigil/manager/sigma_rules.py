"""The Sigma rules the manager serves next to its Gene rules: validation, served body, reducer view.

Sigma rules are kept one YAML document per rule, keyed by the Sigma ``id``. An upload is checked
against the whole resulting set (stored rules, minus the ones replaced, plus the uploaded ones)
with the engine's Sigma front end: each detection rule compiles on its own (memoised by its text,
so an upload costs its own documents), each correlation rule with the rules it references, and
titles must be unique across Sigma and Gene rules. So a correlation rule may reference a stored
rule, and a replacement or deletion that breaks a stored correlation is caught. Every error
names its document (1-based index and first line in the request body), the rule's id and title,
the kind (``yaml``, ``parse``, ``logsource``, ``construct``, ``name``, ``exists``) and the reason;
one error refuses the whole upload and nothing is stored.

Rules whose log source vigil does not produce are **refused**, not stored with a warning: a stored
rule is served to every agent as a working rule, and one that can never fire would only hide the
gap (see ``docs/api.md``).
"""

from __future__ import annotations

import bisect
import hashlib
import importlib.util
import logging
import re
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from vigil.engine.compiler import check_ir
from vigil.engine.ir import Attack, Node
from vigil.manager.scoring import RuleInfo

__all__ = [
    "SIGMA_UNAVAILABLE",
    "UNSUPPORTED_KINDS",
    "SigmaDocument",
    "SigmaRuleCache",
    "SigmaUpload",
    "check_sigma_delete",
    "check_sigma_upload",
    "served_body",
    "sigma_available",
    "split_documents",
]

logger = logging.getLogger(__name__)

SIGMA_UNAVAILABLE = "the Sigma front end needs pySigma on the manager: pip install 'vigil[sigma]'"
_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def sigma_available() -> bool:
    """pySigma is installed (not imported: a manager without Sigma rules never pays for it)."""
    return importlib.util.find_spec("sigma") is not None


@dataclass(frozen=True, slots=True)
class SigmaDocument:
    """One YAML document of an upload: its position, text and (when it parsed) its mapping."""

    index: int  # 1-based position among the source's non-empty documents
    line: int  # 1-based line of the source where the document starts
    text: str
    data: dict[str, Any] | None = None
    source: str = "<request>"  # the request body, or a file (``vigil manager rules import``)

    @property
    def rule_id(self) -> str | None:
        value = (self.data or {}).get("id")
        return value if isinstance(value, str) and value else None

    @property
    def title(self) -> str | None:
        value = (self.data or {}).get("title")
        return value if isinstance(value, str) and value else None

    @property
    def kind(self) -> str:
        return "correlation" if "correlation" in (self.data or {}) else "rule"


def split_documents(text: str, source: str = "<request>") -> list[SigmaDocument]:
    """The non-empty YAML documents of ``text`` (``---`` lines), each with the line it starts on."""
    docs: list[SigmaDocument] = []
    start, line = 0, 1
    bounds = [(m.start(), m.end()) for m in _SEPARATOR.finditer(text)] + [(len(text), len(text))]
    for sep_start, sep_end in bounds:
        body = text[start:sep_start]
        if any(ln.strip() and not ln.lstrip().startswith("#") for ln in body.splitlines()):
            docs.append(SigmaDocument(len(docs) + 1, line, body.strip("\n") + "\n", source=source))
        line = text.count("\n", 0, sep_end) + 2
        start = sep_end + 1
    return docs


def served_body(texts: Sequence[str]) -> bytes:
    """The rule set as agents receive it: each document after a ``---`` line (empty set: b"")."""
    return "".join(f"---\n{t}" for t in texts).encode()


#: Kinds of error that describe a well-formed rule vigil cannot run (``--skip-unsupported``).
UNSUPPORTED_KINDS = frozenset({"logsource", "construct"})


def _error(
    doc: SigmaDocument | None,
    kind: str,
    message: str,
    *,
    rule_id: str | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    rid = rule_id or (doc.rule_id if doc else None)
    name = title or (doc.title if doc else None)
    return {
        "file": doc.source if doc is not None else "<stored>",
        "document": doc.index if doc is not None else 0,
        "line": doc.line if doc is not None else 0,
        "id": rid or "",
        "title": name or "",
        "rule": name or rid or "",
        "kind": kind,
        "message": message,
    }


def _parse_document(doc: SigmaDocument) -> tuple[SigmaDocument, dict[str, Any] | None]:
    """The document with its mapping, or an error naming the line of the YAML problem."""
    try:
        data = yaml.load(doc.text, Loader=_Loader)  # noqa: S506 (safe loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {doc.line + mark.line}: " if mark is not None else ""
        detail = getattr(exc, "problem", None) or str(exc)
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None:
            detail += f" ({context} at line {doc.line + context_mark.line})"
        elif context:
            detail += f" ({context})"
        return doc, _error(doc, "yaml", f"invalid YAML: {where}{detail}")
    if not isinstance(data, dict):
        return doc, _error(doc, "yaml", f"document is a {type(data).__name__}, not a Sigma rule mapping")
    doc = SigmaDocument(doc.index, doc.line, doc.text, data, doc.source)
    if "action" in data:
        return doc, _error(
            doc, "parse", "collection actions (action: global/reset/repeat) are not stored: upload full rules"
        )
    if doc.rule_id is None:
        return doc, _error(doc, "parse", "rule has no id (the manager keys Sigma rules by id)")
    if doc.title is None:
        return doc, _error(doc, "parse", "rule has no title (detections name Sigma rules by title)")
    return doc, None


@dataclass
class SigmaUpload:
    """What an upload would store: the documents (in request order), or every error."""

    documents: list[SigmaDocument] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


_DOC_CACHE: dict[str, Any] = {}  # document text -> what it compiles to alone (SigmaRuleSet)
_DOC_CACHE_SIZE = 16384
_TOP_CORRELATION = re.compile(r"^correlation\s*:", re.MULTILINE)
_TOP_KEY = {key: re.compile(rf"^{key}\s*:\s*['\"]?([^'\"\s#]+)", re.MULTILINE) for key in ("id", "name")}

Owner = SigmaDocument | str  # an uploaded document, or the id of a stored rule


@dataclass
class _Compiled:
    """What a set of documents compiles to, each result tied to the document it comes from."""

    #: (owner, title, Sigma id, IR condition or None for a correlation, criticality, ATT&CK)
    rules: list[tuple[Owner, str, str | None, Node | None, int, tuple[Attack, ...]]]
    #: (owner or None when unknown, rejection)
    rejections: list[tuple[Owner | None, Any]]


def _compile_document(text: str) -> Any:
    """One detection rule compiled alone: the same result as inside any set (memoised, bounded)."""
    from vigil.engine.sigma import load_sigma_text

    cached = _DOC_CACHE.get(text)
    if cached is None:
        cached = load_sigma_text(f"---\n{text}", path="<sigma document>")
        if len(_DOC_CACHE) >= _DOC_CACHE_SIZE:
            _DOC_CACHE.clear()
        _DOC_CACHE[text] = cached
    return cached


def _top_value(text: str, key: str) -> str | None:
    m = _TOP_KEY[key].search(text)
    return m.group(1) if m else None


def _references(text: str) -> list[str]:
    data = _mapping(text).get("correlation")
    refs = data.get("rules") if isinstance(data, dict) else None
    if isinstance(refs, str):
        return [refs]
    return [r for r in refs if isinstance(r, str)] if isinstance(refs, list) else []


def _compile_sources(sources: Sequence[tuple[Owner, str]]) -> _Compiled:
    """Compile detection rules one by one (memoised) and correlation rules with what they use.

    A correlation rule is compiled together with the documents it references (by id or name,
    transitively), so an upload costs the compilation of its own documents, not of the whole set.
    """
    from vigil.engine.sigma import load_sigma_text

    out = _Compiled([], [])
    for owner, text in sources:
        if _TOP_CORRELATION.search(text):
            continue
        result = _compile_document(text)
        for rule in result.rules:
            ir = rule.ir
            out.rules.append((owner, ir.name, ir.sigma_id, ir.condition, ir.criticality, ir.attack))
        out.rejections.extend((owner, rej) for rej in result.rejections)
    if not any(_TOP_CORRELATION.search(text) for _, text in sources):
        return out
    keyed: dict[str, int] = {}  # id or name -> index in sources
    for i, (_, text) in enumerate(sources):
        for key in ("id", "name"):
            value = _top_value(text, key)
            if value is not None:
                keyed.setdefault(value, i)
    wanted = {i for i, (_, text) in enumerate(sources) if _TOP_CORRELATION.search(text)}
    pending = [ref for i in wanted for ref in _references(sources[i][1])]
    while pending:
        found = keyed.get(pending.pop())
        if found is not None and found not in wanted:
            wanted.add(found)
            if _TOP_CORRELATION.search(sources[found][1]):
                pending.extend(_references(sources[found][1]))
    subset = [sources[i] for i in sorted(wanted)]
    pieces: list[str] = []
    starts: list[int] = []
    line = 1
    for _, text in subset:
        line += 1  # the "---" line
        starts.append(line)
        pieces.append(f"---\n{text}")
        line += text.count("\n")
    result = load_sigma_text("".join(pieces), path="<sigma correlations>")
    by_id = {_top_value(t, "id"): o for o, t in subset}

    def position(at: int) -> int | None:
        i = bisect.bisect_right(starts, at) - 1
        return i if i >= 0 else None

    def owner_of(rule_id: str | None, at: int) -> Owner | None:
        if rule_id is not None and rule_id in by_id:
            return by_id[rule_id]
        doc = position(at)
        return subset[doc][0] if doc is not None else None

    for corr in result.correlations:
        where = owner_of(corr.sigma_id, corr.source.line if corr.source else 0)
        if where is not None:
            out.rules.append((where, corr.name, corr.sigma_id, None, corr.criticality, corr.attack))
    for rej in result.rejections:
        # The detection rules' own rejections were reported above; keep those of correlation docs.
        doc = position(rej.line)
        if rej.correlation or (doc is not None and _TOP_CORRELATION.search(subset[doc][1])):
            out.rejections.append((owner_of(rej.rule_id, rej.line), rej))
    return out


def _compile_set(
    docs: Sequence[SigmaDocument],
    stored: Mapping[str, str],
    gene_names: Collection[str],
) -> list[dict[str, Any]]:
    """Every error of ``docs`` compiled together with ``stored`` (id -> text)."""
    sources: list[tuple[Owner, str]] = [(d, d.text) for d in docs]
    sources.extend(stored.items())
    compiled = _compile_sources(sources)
    errors: list[dict[str, Any]] = []

    def add(owner: Owner | None, kind: str, message: str, rid: str | None, title: str | None) -> None:
        if isinstance(owner, SigmaDocument):
            errors.append(_error(owner, kind, message, rule_id=rid, title=title))
        else:
            stored_id = owner or rid or ""
            message = f"stored rule {stored_id} would no longer load: {message}"
            errors.append(_error(None, kind, message, rule_id=rid, title=title))

    for owner, rej in compiled.rejections:
        add(owner, rej.kind, rej.reason, rej.rule_id, rej.title)
    names: dict[str, str] = {}
    for owner, name, rid, condition, _crit, _attack in compiled.rules:
        problem = check_ir(condition) if condition is not None else None
        if problem is not None:
            add(owner, "construct", problem, rid, name)
        if name in gene_names:
            add(
                owner,
                "name",
                f"title {name!r} is also the Name of a Gene rule (detections name rules)",
                rid,
                name,
            )
        elif name in names:
            add(owner, "name", f"title {name!r} is also the title of Sigma rule {names[name]}", rid, name)
        else:
            names[name] = rid or ""
    return errors


def check_sigma_upload(
    text: str | Sequence[tuple[str, str]],
    stored: Mapping[str, str],
    gene_names: Collection[str],
    *,
    update: bool,
    skip: Collection[tuple[str, int]] = (),
) -> SigmaUpload:
    """Split, parse and compile an upload against the stored set (id -> YAML text).

    ``text`` is a request body, or (source name, text) pairs: files imported together. Documents
    named in ``skip`` as (source, index) are left out.
    """
    upload = SigmaUpload()
    seen: dict[str, SigmaDocument] = {}
    sources = [("<request>", text)] if isinstance(text, str) else list(text)
    raws = [doc for source, body in sources for doc in split_documents(body, source)]
    raws = [doc for doc in raws if (doc.source, doc.index) not in skip]
    for raw in raws:
        doc, error = _parse_document(raw)
        if error is not None:
            upload.errors.append(error)
            continue
        rid = doc.rule_id or ""
        if rid in seen:
            first = seen[rid]
            where = f"document {first.index}" + (f" of {first.source}" if first.source != doc.source else "")
            upload.errors.append(_error(doc, "exists", f"id {rid} is also the id of {where}"))
            continue
        seen[rid] = doc
        if rid in stored and not update:
            upload.errors.append(
                _error(doc, "exists", f"id {rid} is already stored (use update=true to replace it)")
            )
        upload.documents.append(doc)
    if not upload.documents and not upload.errors:
        upload.errors.append(_error(None, "yaml", "the body holds no Sigma rule"))
    if upload.documents:
        rest = {rid: body for rid, body in stored.items() if rid not in seen}
        upload.errors.extend(_compile_set(upload.documents, rest, gene_names))
    order = {source: i for i, (source, _) in enumerate(sources)}
    upload.errors.sort(key=lambda e: (order.get(e["file"], len(order)), e["document"] or 1 << 30, e["id"]))
    return upload


def check_sigma_delete(
    rule_id: str, stored: Mapping[str, str], gene_names: Collection[str]
) -> list[dict[str, Any]]:
    """Errors the stored set would have without ``rule_id`` (a correlation that references it)."""
    rest = {rid: body for rid, body in stored.items() if rid != rule_id}
    if not rest:
        return []
    return _compile_set([], rest, gene_names)


@dataclass(frozen=True, slots=True)
class SigmaEntry:
    """A stored Sigma rule as the admin API lists it."""

    id: str
    title: str
    kind: str
    level: str
    status: str
    logsource: dict[str, Any]
    criticality: int
    techniques: tuple[str, ...]
    tactics: tuple[str, ...]
    yaml: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "level": self.level,
            "status": self.status,
            "logsource": self.logsource,
            "criticality": self.criticality,
            "techniques": list(self.techniques),
            "tactics": list(self.tactics),
            "yaml": self.yaml,
        }


class SigmaRuleCache:
    """The served Sigma set (``GET /rules/sigma`` body and sha256) and each rule's reducer view."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._lock = threading.Lock()
        self.available = sigma_available()
        self.reload()

    def reload(self) -> None:
        rows = self._store.list_sigma_rules()
        texts = {r["id"]: r["body"] for r in rows}
        body = served_body([texts[rid] for rid in sorted(texts)])
        info, entries = self._compile(rows)
        with self._lock:
            self.texts: dict[str, str] = texts
            self.body = body
            self.sha256 = hashlib.sha256(body).hexdigest()
            self.info: dict[str, RuleInfo] = info
            self.entries: dict[str, SigmaEntry] = entries

    def _compile(
        self, rows: Sequence[Mapping[str, Any]]
    ) -> tuple[dict[str, RuleInfo], dict[str, SigmaEntry]]:
        meta: dict[str, tuple[int, tuple[str, ...], tuple[str, ...]]] = {}
        if rows and self.available:
            compiled = _compile_sources([(r["id"], r["body"]) for r in rows])
            for _owner, rej in compiled.rejections:  # stored by an older version: served, reported
                logger.warning("stored sigma rule does not load in this engine: %s", rej)
            for owner, _name, _rid, _cond, crit, attack in compiled.rules:
                techniques = tuple(dict.fromkeys(a.id for a in attack if a.id))
                tactics = tuple(dict.fromkeys(a.tactic for a in attack if a.tactic))
                meta[str(owner)] = (crit, techniques, tactics)
        info: dict[str, RuleInfo] = {}
        entries: dict[str, SigmaEntry] = {}
        for row in rows:
            data = _mapping(row["body"])
            crit, techniques, tactics = meta.get(row["id"], (0, (), ()))
            logsource = data.get("logsource")
            entries[row["id"]] = SigmaEntry(
                id=row["id"],
                title=row["title"],
                kind=row["kind"],
                level=str(data.get("level") or ""),
                status=str(data.get("status") or ""),
                logsource=logsource if isinstance(logsource, dict) else {},
                criticality=crit,
                techniques=techniques,
                tactics=tactics,
                yaml=row["body"],
            )
            info[row["title"]] = RuleInfo(crit, techniques, tactics)
        return info, entries


def _mapping(text: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (safe loader)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}
