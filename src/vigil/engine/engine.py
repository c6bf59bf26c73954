"""The rule engine: load rules (gene files, other front ends), compile them, match events.

Matching follows gene v2.3.0's ``MatchOrFilter`` (spec §5): every rule whose meta filter and
condition hold, in load order; Criticality summed and capped at 10; ATT&CK de-duplicated by ID;
actions as an insertion-ordered set completed by the default actions of the final criticality.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil.engine.compiler import Bucket, CompiledRules, check_ir, compile_rules
from vigil.engine.errors import RuleError, RuleLoadError
from vigil.engine.ir import Attack, RuleIR, SourceLocation
from vigil.engine.loader import (
    GENE_EXTENSIONS,
    RawGeneRule,
    has_loader,
    loader_for,
    loaders_done,
    loaders_prepare,
    read_gene_file,
    read_templates,
    walk,
)
from vigil.engine.runtime import value_text
from vigil.events.fields import go_lower, go_str, parse_event_id
from vigil.events.gojson import GoStruct, dumps

__all__ = ["Engine", "MatchResult", "RuleInfo", "check_path"]

logger = logging.getLogger(__name__)
_MISSING: Any = object()
_NO_DATA: dict[str, Any] = {}
_EID_CACHE: dict[str, int] = {}


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """A loaded rule and its meta. ``disabled`` says why it never matches (gene: unknown container)."""

    name: str
    tags: tuple[str, ...]
    criticality: int
    attack: tuple[Attack, ...]
    actions: tuple[str, ...]
    filter: bool
    source: SourceLocation | None
    disabled: str | None
    ir: RuleIR
    raw: dict[str, Any] | None = None  # gene rule as decoded (after templates), for ``rules dump``


#: Distinct matching-rule combinations whose results ``Engine`` keeps (see ``Engine._result``).
RESULT_MEMO_SIZE = 4096


class MatchResult:
    """What matching one event gave. Treat as read-only (results may be shared)."""

    __slots__ = ("_json", "actions", "attack", "criticality", "filtered", "sigma_ids", "signature")

    def __init__(
        self,
        signature: list[str],
        criticality: int,
        attack: list[Attack],
        actions: list[str],
        filtered: bool,
        *,
        sigma_ids: list[str] | None = None,
    ) -> None:
        self.signature = signature
        self.criticality = criticality
        self.attack = attack
        self.actions = actions
        self.filtered = filtered
        #: ids of the Sigma rules among ``signature`` (RuleIR.sigma_id), in the same order.
        self.sigma_ids: list[str] = sigma_ids if sigma_ids is not None else []
        self._json: dict[tuple[bool, bool], bytes] = {}

    @property
    def matched(self) -> bool:
        """At least one rule (alert or filter) matched."""
        return bool(self.signature) or self.filtered

    @property
    def alert(self) -> bool:
        return bool(self.signature)

    def gene_info(self, show_attack: bool = True, show_actions: bool = False) -> GoStruct:
        """gene's ``GeneInfo`` object (field order as gene's struct)."""
        info = GoStruct(Signature=list(self.signature), Criticality=self.criticality)
        if show_attack and self.attack:
            info["ATTACK"] = [_attack_json(a) for a in self.attack]
        if show_actions:
            info["Actions"] = list(self.actions)
        return info

    def gene_info_json(self, show_attack: bool = True, show_actions: bool = False) -> bytes:
        """``gene_info`` as Go-marshalled JSON bytes (memoised: the no-match result is shared)."""
        key = (show_attack, show_actions)
        out = self._json.get(key)
        if out is None:
            out = self._json[key] = dumps(self.gene_info(show_attack, show_actions))
        return out

    def to_whids(self) -> dict[str, Any] | None:
        """WHIDS ``Detection`` (agent/manager form) or None when there is nothing to report."""
        if not (self.criticality > 0 or self.signature or self.attack or self.actions):
            return None
        out: dict[str, Any] = {"Signature": list(self.signature), "Criticality": self.criticality}
        if self.actions:
            out["Actions"] = list(self.actions)
        if self.attack:
            out["ATTACK"] = [dict(_attack_json(a)) for a in self.attack]
        if self.sigma_ids:
            out["SigmaIDs"] = list(self.sigma_ids)
        return out

    def __repr__(self) -> str:
        return (
            f"MatchResult(signature={self.signature!r}, criticality={self.criticality}, "
            f"filtered={self.filtered}, actions={self.actions!r})"
        )


def _attack_json(a: Attack) -> GoStruct:
    item = GoStruct(ID=a.id, Tactic=a.tactic)
    if a.description:
        item["Description"] = a.description
    item["Reference"] = a.reference
    return item


class Engine:
    """Load rules, then ``match``/``scan`` events. Containers must be added before the rules using them."""

    def __init__(
        self,
        *,
        show_attack: bool = True,
        show_actions: bool = False,
        default_actions: dict[int, list[str]] | None = None,
    ) -> None:
        self.show_attack = show_attack
        self.show_actions = show_actions
        self.default_actions: dict[int, list[str]] = dict(default_actions or {})
        self.rules: list[RuleInfo] = []
        self.templates: dict[str, str] = {}
        self.containers: dict[str, set[str]] = {}
        self.scanned = 0
        self.positives = 0
        self._names: set[str] = set()
        self._compiled: CompiledRules | None = None
        self._table: list[tuple[bool, int, str, tuple[Attack, ...], tuple[str, ...], str | None]] = []
        self._nomatch: MatchResult | None = None
        self._results: dict[tuple[Any, ...], MatchResult] = {}
        self._key_fn: dict[tuple[str, int], Any] = {}
        self._chan_fn: dict[str, Any] = {}
        self._default_fn: Any = None
        self._uses_computer = False

    # ------------------------------------------------------------------ containers
    def add_container(self, name: str, values: Any) -> None:
        """Add values (lower-cased the Go way) to the named container, creating it if needed."""
        container = self.containers.setdefault(name, set())
        container.update(go_lower(v) for v in values)

    def load_container_file(self, name: str, path: str | Path) -> None:
        """One value per line (``\\n`` or ``\\r\\n``; empty lines count), like gene ``LoadContainer``."""
        text = Path(path).read_bytes().decode("utf-8", "replace")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        self.add_container(name, (line[:-1] if line.endswith("\r") else line for line in lines))

    # ------------------------------------------------------------------ loading
    def load_text(self, text: str, source: str = "<text>") -> None:
        """Load gene rules from a string (a stream of JSON objects)."""
        from vigil.engine.gene.decode import DecodeError, decode_rule, iter_objects, rule_name

        errors: list[RuleError] = []
        raws: list[RawGeneRule] = []
        for raw in iter_objects(text):
            if raw.error is not None or raw.data is None:
                errors.append(RuleError(source, raw.line, None, None, raw.error or "not a rule object"))
                continue
            try:
                raws.append(RawGeneRule(source, raw.line, decode_rule(raw.data)))
            except DecodeError as err:
                errors.append(RuleError(source, raw.line, rule_name(raw.data), None, f"json: {err}"))
        self._commit(self._build(list(raws), errors))

    def load_path(self, path: str | Path) -> None:
        """Load a rule file or a directory the way gene does; RuleLoadError lists every error."""
        self._commit(self._collect(Path(path)))

    def check(self, path: str | Path) -> list[RuleError]:
        """Every error ``load_path`` would report, without loading anything."""
        try:
            self._collect(Path(path))
        except RuleLoadError as err:
            return err.errors
        return []

    def add_rule(self, rule: RuleIR) -> None:
        """Add one rule from another front end (e.g. Sigma).

        RuleLoadError for a duplicate name or a node that cannot compile (a regex RE2 rejects, an
        invalid CIDR network, an extract group missing from its regex).
        """
        problem = check_ir(rule.condition)
        if problem is not None:
            src = rule.source or SourceLocation("<rule>")
            raise RuleLoadError([RuleError(src.file, src.line, rule.name, None, problem)])
        self._commit([(rule, None, None)], check_names=True)

    def _collect(self, path: Path) -> list[tuple[RuleIR, str | None, dict[str, Any] | None]]:
        errors: list[RuleError] = []
        try:
            root = path.resolve(strict=True)
        except OSError as err:
            raise RuleLoadError([RuleError(str(path), 0, None, None, f"cannot open: {err}")]) from None
        template_root = root.parent if root.is_file() else root
        for f in walk(template_root):
            if f.suffix == ".toml":
                read_templates(f, self.templates, errors)
        files = [root] if root.is_file() else list(walk(root))
        gene = [f for f in files if f.suffix in GENE_EXTENSIONS]
        if (
            gene
            and not errors
            and all(
                f.suffix in GENE_EXTENSIONS or f.suffix == ".toml" or not has_loader(f.suffix) for f in files
            )
        ):  # gene files only (besides templates and files no front end reads): maybe in the rule cache
            return self._collect_gene(gene)
        items: list[RawGeneRule | RuleIR] = []  # in walk order, whatever the front end
        try:
            loaders_prepare(files)
            for f in files:
                if f.suffix in GENE_EXTENSIONS:
                    items.extend(read_gene_file(f, errors))
                elif f.suffix != ".toml":
                    loader = loader_for(f.suffix)
                    if loader is not None:
                        rules, errs = loader(f)
                        items.extend(rules)
                        errors.extend(errs)
                    elif root.is_file():
                        errors.append(RuleError(str(f), 0, None, None, f"no loader for {f.suffix!r} files"))
        finally:
            loaders_done()
        return self._build(items, errors)

    def _collect_gene(self, files: list[Path]) -> list[tuple[RuleIR, str | None, dict[str, Any] | None]]:
        """A set of gene files only: from the rule cache when it holds the set (``gene_cache``),
        else decoded and compiled, then stored."""
        from vigil.engine import gene_cache as cache

        try:
            contents: list[bytes] | None = [f.read_bytes() for f in files]
        except OSError:  # read again, and reported, by read_gene_file below
            contents = None
        key = None
        if contents is not None:
            key = cache.set_key(
                list(zip(map(str, files), contents, strict=True)), self.templates, self.containers
            )
            hit = cache.load(key)
            if hit is not None and not any(ir.name in self._names for ir, _, _ in hit.built):
                hit.replay()
                return hit.built
        errors: list[RuleError] = []
        with cache.captured_logs() as logs:
            items: list[RawGeneRule | RuleIR] = []
            for i, f in enumerate(files):
                items.extend(read_gene_file(f, errors, None if contents is None else contents[i]))
            built = self._build(items, errors)  # RuleLoadError: nothing is stored
        if key is not None:
            cache.store(key, built, logs)
        return built

    def _build(
        self, items: list[RawGeneRule | RuleIR], errors: list[RuleError]
    ) -> list[tuple[RuleIR, str | None, dict[str, Any] | None]]:
        built: list[tuple[RuleIR, str | None, dict[str, Any] | None]] = []
        names = set(self._names)
        # the gene front end, imported here: a gene set read back from the rule cache never needs it
        from vigil.engine.gene.rules import RuleCompileError, compile_rule

        for raw in items:
            if isinstance(raw, RuleIR):
                self._build_other(raw, names, built, errors)
                continue
            rule = raw.rule
            name = rule["Name"]
            if rule["Meta"]["Disable"]:
                logger.info('Rule "%s" has been disabled', name)
                continue
            try:
                compiled = compile_rule(
                    rule, self.templates, self.containers, SourceLocation(raw.file, raw.line)
                )
            except RuleCompileError as err:
                errors.append(RuleError(raw.file, raw.line, name, err.statement, str(err)))
                continue
            if name in names:
                errors.append(RuleError(raw.file, raw.line, name, None, f'Rule "{name}" already exists'))
                continue
            names.add(name)
            built.append((compiled.ir, compiled.disabled, compiled.raw))
        if errors:
            raise RuleLoadError(errors)
        return built

    @staticmethod
    def _build_other(
        ir: RuleIR,
        names: set[str],
        built: list[tuple[RuleIR, str | None, dict[str, Any] | None]],
        errors: list[RuleError],
    ) -> None:
        """A rule from another front end: unique name, and a condition that compiles."""
        src = ir.source or SourceLocation("<rule>")
        if ir.name in names:
            errors.append(RuleError(src.file, src.line, ir.name, None, f'Rule "{ir.name}" already exists'))
            return
        problem = check_ir(ir.condition)
        if problem is not None:
            errors.append(RuleError(src.file, src.line, ir.name, None, problem))
            return
        names.add(ir.name)
        built.append((ir, None, None))

    def _commit(
        self, built: list[tuple[RuleIR, str | None, dict[str, Any] | None]], check_names: bool = False
    ) -> None:
        if check_names:
            dups = [ir for ir, _, _ in built if ir.name in self._names]
            if dups:
                ir = dups[0]
                src = ir.source or SourceLocation("<rule>")
                raise RuleLoadError(
                    [RuleError(src.file, src.line, ir.name, None, f'Rule "{ir.name}" already exists')]
                )
        for ir, disabled, raw in built:
            self._names.add(ir.name)
            self.rules.append(
                RuleInfo(
                    ir.name,
                    ir.tags,
                    ir.criticality,
                    ir.attack,
                    ir.actions,
                    ir.filter,
                    ir.source,
                    disabled,
                    ir,
                    raw,
                )
            )
        self._compiled = None

    # ------------------------------------------------------------------ matching
    def compile(self, *, lazy: bool = True) -> CompiledRules:
        """(Re)build the generated matcher; done automatically on the first match after a change.

        ``lazy`` (the default) builds the dispatch tables only: the code of each (channel, EventID)
        bucket is generated when its first event comes (``compile_rules``). ``lazy=False``
        generates it all now, for callers that want no compile on the matching path (the agent).
        """
        self._compiled = compiled = compile_rules(
            [None if r.disabled else r.ir for r in self.rules], self.containers, lazy=lazy
        )
        self._key_fn = {}
        for k, b in compiled.by_key.items():
            self._key_fn[k] = self._dispatch(self._key_fn, k, b)
        self._chan_fn = {}
        for ch, b in compiled.by_channel.items():
            self._chan_fn[ch] = self._dispatch(self._chan_fn, ch, b)
        self._default_fn = self._dispatch(None, None, compiled.default)
        self._uses_computer = compiled.uses_computer
        self._table = [
            (r.filter, r.criticality, r.name, r.attack, r.actions, r.ir.sigma_id) for r in self.rules
        ]
        self._nomatch = self._finish([], 0, [], {}, False, sigma_ids=[])
        self._results = {}
        return self._compiled

    def _dispatch(self, table: dict[Any, Any] | None, key: Any, bucket: Bucket) -> Any:
        """The bucket's function, or for a bucket not compiled yet a stand-in that compiles it on
        the first call and puts the real function in its place (``table[key]``, or the default)."""
        if bucket.compiled:
            return bucket.fn

        def first_call(ev: Any, ed: Any, cm: str) -> list[int]:
            fn = bucket.fn
            if table is None:
                if self._default_fn is first_call:
                    self._default_fn = fn
            elif table.get(key) is first_call:
                table[key] = fn
            return fn(ev, ed, cm)

        return first_call

    @property
    def no_match(self) -> MatchResult:
        """The shared result ``match`` returns when no rule matched (compare with ``is``)."""
        if self._compiled is None:
            self.compile()
        return self._nomatch  # type: ignore[return-value]

    def _finish(
        self,
        sig: list[str],
        crit: int,
        attack: list[Attack],
        actions: dict[str, None],
        filtered: bool,
        *,
        sigma_ids: list[str],
    ) -> MatchResult:
        if self.show_actions:
            for action in self.default_actions.get(crit, ()):
                actions.pop(action, None)
                actions[action] = None
        return MatchResult(sig, crit, attack, list(actions), filtered, sigma_ids=sigma_ids)

    def match(self, event: Any) -> MatchResult:
        """Match one decoded event (dict); never raises on odd event shapes."""
        if self._compiled is None:
            self.compile()
        try:  # fast path: the usual Windows-event shape
            ev = event["Event"]
            system = ev["System"]
            channel = system["Channel"]
            eid_raw = system["EventID"]
            ed = ev.get("EventData", _NO_DATA)
        except (KeyError, TypeError, AttributeError, IndexError):
            return self._match_odd(event)
        if channel.__class__ is not str or system.__class__ is not dict or ev.__class__ is not dict:
            return self._match_odd(event)
        if eid_raw.__class__ is not str:  # parse_event_id reads go_str(value): its text, memoised
            eid_raw = value_text(eid_raw)  # for {"Qualifiers": ..., "Value": ...} objects
        eid = _EID_CACHE.get(eid_raw)
        if eid is None:
            eid = parse_event_id(eid_raw)
            if len(_EID_CACHE) < 4096:
                _EID_CACHE[eid_raw] = eid
        if ed.__class__ is not dict:
            ed = _NO_DATA
        fn = self._key_fn.get((channel, eid)) or self._chan_fn.get(channel) or self._default_fn
        computer = ""
        if self._uses_computer:
            computer = system.get("Computer", "")
            if computer.__class__ is not str:
                computer = go_str(computer)
        hits = fn(event, ed, computer)
        if not hits:
            return self._nomatch  # type: ignore[return-value]
        return self._result(hits)

    def _match_odd(self, event: Any) -> MatchResult:
        """Any other shape: missing or non-object parts read as gene does (empty channel, EventID 0)."""
        ev = event.get("Event") if event.__class__ is dict else None
        system = ev.get("System") if ev.__class__ is dict else None
        ed = ev.get("EventData", _NO_DATA) if ev.__class__ is dict else _NO_DATA
        if ed.__class__ is not dict:
            ed = _NO_DATA
        channel, eid, computer = "", 0, ""
        if system.__class__ is dict:
            channel = system.get("Channel", "")
            if channel.__class__ is not str:
                channel = go_str(channel)
            eid_raw = system.get("EventID", _MISSING)
            eid = 0 if eid_raw is _MISSING else parse_event_id(eid_raw)
            computer = system.get("Computer", "")
            if computer.__class__ is not str:
                computer = go_str(computer)
        fn = self._key_fn.get((channel, eid)) or self._chan_fn.get(channel) or self._default_fn
        hits = fn(event, ed, computer)
        if not hits:
            return self._nomatch  # type: ignore[return-value]
        return self._result(hits)

    def _result(self, hits: list[int]) -> MatchResult:
        """``_aggregate(hits)``, shared by the events that match the same rules.

        The result is a function of the matching rules' indices and of the display flags only
        (the rule table and default actions are fixed by ``compile``, which empties the memo), so
        events matching the same rules share one read-only result, and with it its memoised
        ``gene_info_json``. Bounded: emptied when it holds ``RESULT_MEMO_SIZE`` entries.
        """
        key = (self.show_attack, self.show_actions, *hits)
        memo = self._results
        result = memo.get(key)
        if result is None:
            result = self._aggregate(hits)
            if len(memo) >= RESULT_MEMO_SIZE:
                memo.clear()
            memo[key] = result
        return result

    def _aggregate(self, hits: list[int]) -> MatchResult:
        table = self._table
        sig: list[str] = []
        crit = 0
        attack: list[Attack] = []
        seen: set[str] = set()
        actions: dict[str, None] = {}
        filtered = False
        sigma_ids: list[str] = []
        for i in hits:
            is_filter, rcrit, name, rattack, ractions, sigma_id = table[i]
            if is_filter:
                filtered = True
                continue
            crit = min(crit + rcrit, 10)
            if self.show_attack:
                for a in rattack:
                    if a.id not in seen:
                        seen.add(a.id)
                        attack.append(a)
            if self.show_actions:
                for action in ractions:
                    actions.pop(action, None)
                    actions[action] = None
            sig.append(name)
            if sigma_id is not None:
                sigma_ids.append(sigma_id)
        if not sig:
            return MatchResult([], 0, [], [], True)
        return self._finish(sig, crit, attack, actions, filtered, sigma_ids=sigma_ids)

    def scan(self, event: Any) -> MatchResult:
        """Match, count, and attach ``GeneInfo`` to the event exactly where and when gene does."""
        result = self.match(event)
        self.scanned += 1
        if result.signature:
            self.positives += 1
        elif result.filtered:
            return result  # only filter rules matched: gene leaves the event untouched
        ev = event.get("Event") if event.__class__ is dict else None
        if ev.__class__ is dict:
            ev["GeneInfo"] = result.gene_info(self.show_attack, self.show_actions)
        return result


def check_path(path: str | Path) -> list[RuleError]:
    """Every error of the rule set at ``path`` (empty list when it loads)."""
    return Engine().check(path)
