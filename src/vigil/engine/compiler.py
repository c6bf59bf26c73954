"""Compile a rule set's IR into generated Python, one function per (channel, EventID) bucket.

Each bucket function receives the event, its ``Event.EventData`` object and its computer name, reads
each field it needs once, and returns the indices (load order) of the rules whose meta filter and
condition hold. Regexes on the same field of a bucket are searched together with one RE2 Set.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from vigil.engine import runtime
from vigil.engine.ir import (
    And,
    CidrMatch,
    Const,
    ContainerMatch,
    Exists,
    FieldPath,
    FieldRefMatch,
    FlagMatch,
    KeywordMatch,
    Node,
    Not,
    NumCmp,
    Or,
    RegexMatch,
    RuleIR,
    StrMatch,
)

__all__ = ["Bucket", "CompiledRules", "check_ir", "compile_rules"]

logger = logging.getLogger(__name__)

BucketFn = Callable[[Any, Any, str], list[int]]
_EVENT_DATA = ("Event", "EventData")
_SYSTEM = ("Event", "System")


@dataclass
class _Gen:
    """Code generation state of one bucket function."""

    ns: dict[str, Any]
    shared: dict[Any, str]
    fields: dict[FieldPath, str] = field(default_factory=dict)
    lowered: dict[FieldPath, str] = field(default_factory=dict)
    sets: dict[FieldPath, list[str]] = field(default_factory=dict)
    set_vars: dict[FieldPath, str] = field(default_factory=dict)
    kw_vars: dict[FieldPath, str] = field(default_factory=dict)

    def const(self, key: Any, make: Callable[[], Any], prefix: str) -> str:
        """A namespace name for a shared object (matcher, constant), created once per rule set."""
        name = self.shared.get(key)
        if name is None:
            name = f"_{prefix}{len(self.shared)}"
            self.shared[key] = name
            self.ns[name] = make()
        return name

    def var(self, path: FieldPath) -> str:
        name = self.fields.get(path)
        if name is None:
            name = self.fields[path] = f"f{len(self.fields)}"
        return name

    def low(self, path: FieldPath) -> str:
        self.var(path)
        name = self.lowered.get(path)
        if name is None:
            name = self.lowered[path] = f"l{len(self.lowered)}"
        return name


def _literal(gen: _Gen, value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return gen.const(("float", repr(value)), lambda: value, "k")
    return repr(value)


def _str_test(subject: str, op: str, needle: str) -> str:
    if op == "eq":
        return f"({subject} == {needle})"
    if op == "contains":
        return f"({subject} is not None and {needle} in {subject})"
    return f"({subject} is not None and {subject}.{op}({needle}))"


#: Sub-trees nested deeper than this become helper functions (Python's parser allows 200 parentheses).
MAX_DEPTH = 40


def _expr(node: Node, gen: _Gen, depth: int = 0) -> str:
    if depth >= MAX_DEPTH and isinstance(node, (And, Or, Not)):
        return _helper_call(node, gen)
    depth += 1
    if isinstance(node, And):
        return (
            "(" + " and ".join(_expr(c, gen, depth) for c in node.children) + ")" if node.children else "True"
        )
    if isinstance(node, Or):
        return "(" + " or ".join(_or_terms(node.children, gen, depth)) + ")" if node.children else "False"
    if isinstance(node, Not):
        return f"(not {_expr(node.child, gen, depth)})"
    if isinstance(node, Const):
        return "True" if node.value else "False"
    if isinstance(node, StrMatch):
        if node.ignore_case:
            return _str_test(gen.low(node.field), node.op, repr(node.value.lower()))
        return _str_test(gen.var(node.field), node.op, repr(node.value))
    if isinstance(node, RegexMatch):
        v = gen.var(node.field)
        if runtime.program_size(node.pattern) > runtime.BIG_PROGRAM:
            fn = gen.const(("single", node.pattern), lambda: runtime.SingleRegex(node.pattern), "x")
            return f"{fn}({v})"
        patterns = gen.sets.setdefault(node.field, [])
        if node.pattern not in patterns:
            patterns.append(node.pattern)
        idx = patterns.index(node.pattern)
        r = gen.set_vars.setdefault(node.field, f"r{len(gen.set_vars)}")
        return f"({idx} in ({r} if {r} is not None else ({r} := _RS_{r}({v}))))"
    if isinstance(node, NumCmp):
        fn = "_num_go" if node.syntax == "go" else "_num_plain"
        return f"({fn}({gen.var(node.field)}) {node.op} {_literal(gen, node.value)})"
    if isinstance(node, FlagMatch):
        return f"_flag({gen.var(node.field)}, {node.mask!r})"
    if isinstance(node, FieldRefMatch):
        if node.ignore_case:
            a, b = gen.low(node.field), gen.low(node.other)
        else:
            a, b = gen.var(node.field), gen.var(node.other)
        if node.op == "eq":
            return f"({a} is not None and {a} == {b})"
        return f"({b} is not None and {_str_test(a, node.op, b)})"
    if isinstance(node, ContainerMatch):
        key: tuple[Any, ...] = ("container", node.pattern, node.group, node.container)
        containers = gen.ns["_containers"]
        fn = gen.const(
            key, lambda: runtime.container_matcher(node.pattern, node.group, node.container, containers), "c"
        )
        return f"{fn}({gen.var(node.field)})"
    if isinstance(node, Exists):
        return f"({gen.var(node.field)} is {'not ' if node.present else ''}None)"
    if isinstance(node, CidrMatch):
        fn = gen.const(("cidr", node.networks), lambda: runtime.cidr_matcher(node.networks), "n")
        return f"{fn}({gen.var(node.field)})"
    if isinstance(node, KeywordMatch):
        key = ("kw", node.op, node.value, node.ignore_case)
        fn = gen.const(key, lambda: runtime.keyword_matcher(node.op, node.value, node.ignore_case), "w")
        k = gen.kw_vars.setdefault(node.scope, f"k{len(gen.kw_vars)}")
        return f"{fn}({k} if {k} is not None else ({k} := _kw(ev, {node.scope!r})))"
    raise TypeError(f"unknown IR node {node!r}")


def _or_terms(children: Sequence[Node], gen: _Gen, depth: int) -> list[str]:
    """The alternatives of an ``or``, literal tests on one field merged into one test.

    Equalities become one set membership, prefixes (suffixes) one ``startswith`` (``endswith``)
    with a tuple, CIDR tests one test of all their networks: same result (every test is a pure
    boolean), one operation instead of several.
    """
    groups: dict[tuple[FieldPath, bool, str], list[str]] = {}
    networks: dict[FieldPath, list[str]] = {}
    for c in children:
        if isinstance(c, StrMatch) and c.op in ("eq", "startswith", "endswith"):
            value = c.value.lower() if c.ignore_case else c.value
            groups.setdefault((c.field, c.ignore_case, c.op), []).append(value)
        elif isinstance(c, CidrMatch):
            networks.setdefault(c.field, []).extend(c.networks)
    terms: list[str] = []
    done: set[tuple[FieldPath, bool, str]] = set()
    cidr_done: set[FieldPath] = set()
    for c in children:
        if isinstance(c, CidrMatch) and len(networks[c.field]) > len(c.networks):
            # several CIDR tests of one field: one matcher (one address parse) for all their networks
            if c.field not in cidr_done:
                cidr_done.add(c.field)
                terms.append(_expr(CidrMatch(c.field, tuple(dict.fromkeys(networks[c.field]))), gen, depth))
            continue
        key = (c.field, c.ignore_case, c.op) if isinstance(c, StrMatch) else None
        if key is None or key not in groups or len(groups[key]) < 2:
            terms.append(_expr(c, gen, depth))
            continue
        if key in done:
            continue
        done.add(key)
        path, ignore_case, op = key
        subject = gen.low(path) if ignore_case else gen.var(path)
        values = tuple(dict.fromkeys(groups[key]))
        if op == "eq":
            name = gen.const(("eqset", values), lambda v=values: frozenset(v), "e")  # type: ignore[misc]
            terms.append(f"({subject} in {name})")
        else:
            terms.append(f"({subject} is not None and {subject}.{op}({values!r}))")
    return terms


def _helper_call(node: Node, gen: _Gen) -> str:
    """Compile a deep sub-tree as its own function (same arguments as a bucket) and call it."""
    name = gen.shared.get(("helper", node))
    if name is None:
        name = f"_h{len(gen.shared)}"
        gen.shared[("helper", node)] = name
        sub = _Gen(gen.ns, gen.shared)
        src = _finish_source(name, [f"    return bool({_expr(node, sub)})"], sub, "")
        exec(compile(src, f"<vigil helper {name}>", "exec"), gen.ns)  # noqa: S102 - our own generated code
    return f"{name}(ev, ed, cm)"


def _fetch(path: FieldPath, var: str) -> list[str]:
    """Read one field inline (``runtime.field`` unrolled): a dict ``get`` per key, no call."""
    if len(path) > 2 and path[:2] == _EVENT_DATA:
        base, keys = "ed", path[2:]
    elif len(path) > 2 and path[:2] == _SYSTEM:
        base, keys = "sy", path[2:]
    elif path:
        base, keys = "ev", path
    else:
        return [f"    {var} = _field(ev, ())"]
    lines = [f"    {var} = {base}.get({keys[0]!r}, _M) if {base}.__class__ is dict else _M"]
    for key in keys[1:]:
        lines.append(f"    {var} = {var}.get({key!r}, _M) if {var}.__class__ is dict else _M")
    if base == "ed" and len(keys) == 1:  # ed is always a dict
        lines[0] = f"    {var} = ed.get({keys[0]!r}, _M)"
    lines.append(f"    if {var}.__class__ is not str:")
    lines.append(f"        {var} = None if {var} is _M else _S({var})")
    return lines


def _rule_test(rule: RuleIR, gen: _Gen) -> str:
    test = _expr(rule.condition, gen)
    if rule.computers:
        cs = gen.const(("computers", rule.computers), lambda r=rule: frozenset(r.computers), "h")  # type: ignore[misc]
        test = f"cm in {cs} and {test}"
    return test


def _finish_source(name: str, body: list[str], gen: _Gen, tail: str) -> str:
    """Function header fetching the fields ``body`` uses, then ``body``, then ``tail``."""
    head: list[str] = [f"def {name}(ev, ed, cm):"]
    if any(len(path) > 2 and path[:2] == _SYSTEM for path in gen.fields):
        head.append("    sy = ev.get('Event', _M) if ev.__class__ is dict else _M")
        head.append("    sy = sy.get('System', _M) if sy.__class__ is dict else _M")
    for path, var in gen.fields.items():
        head.extend(_fetch(path, var))
    for path, low in gen.lowered.items():
        var = gen.fields[path]
        head.append(f"    {low} = None if {var} is None else {var}.lower()")
    for k in gen.kw_vars.values():
        head.append(f"    {k} = None")
    for path, r in gen.set_vars.items():
        patterns = gen.sets[path]
        setname = gen.const(("set", tuple(patterns)), lambda p=patterns: runtime.RegexSet(p), "s")  # type: ignore[misc]
        head.append(f"    {r} = None")
        body = [line.replace(f"_RS_{r}(", f"{setname}(") for line in body]
    return "\n".join([*head, *body, tail, ""])


def _bucket_source(name: str, rules: Sequence[tuple[int, RuleIR]], gen: _Gen) -> str:
    """Linear bucket: every rule's condition inline, in load order."""
    body: list[str] = ["    out = []"]
    for index, rule in rules:
        body.append(f"    if {_rule_test(rule, gen)}:")
        body.append(f"        out.append({index})")
    return _finish_source(name, body, gen, "    return out")


def _rule_source(name: str, rule: RuleIR, gen: _Gen) -> str:
    """One rule as a function returning whether it matches (used by indexed buckets)."""
    return _finish_source(name, [f"    return bool({_rule_test(rule, gen)})"], gen, "")


Required = frozenset[RegexMatch | StrMatch]


def _indexable(node: StrMatch) -> bool:
    """Equality, prefix and suffix tests have a literal to look up (an empty affix matches anything)."""
    return node.op == "eq" or (node.op in ("startswith", "endswith") and node.value != "")


def _cost(req: Required) -> tuple[int, bool, int]:
    """Which of a conjunction's requirements to index by: fewest System fields (an EventID test is
    shared by every event of its bucket), then literal tests only (a dict lookup, no RE2 pass),
    then fewest tests."""
    system = sum(1 for n in req if n.field[:2] == _SYSTEM)
    return (system, any(isinstance(n, RegexMatch) for n in req), len(req))


def required_tests(node: Node) -> Required | None:
    """Regex or literal (eq/startswith/endswith) leaves of which one must hold for ``node`` to hold.

    None when there is no such set (a negation, a numeric test, ``contains``...). Regexes above
    ``runtime.BIG_PROGRAM`` are left out (they would not fit an RE2 set).
    """
    if isinstance(node, RegexMatch):
        return frozenset({node}) if runtime.program_size(node.pattern) <= runtime.BIG_PROGRAM else None
    if isinstance(node, StrMatch):
        return frozenset({node}) if _indexable(node) else None
    if isinstance(node, And):
        options = [r for r in (required_tests(c) for c in node.children) if r is not None]
        return min(options, key=_cost) if options else None
    if isinstance(node, Or):
        out: set[RegexMatch | StrMatch] = set()
        for c in node.children:
            r = required_tests(c)
            if r is None:
                return None
            out |= r
        return frozenset(out) if node.children else None
    return None


def _indexed_source(
    name: str, rules: Sequence[tuple[int, RuleIR]], gen: _Gen, rule_fn: Callable[[int], str]
) -> str:
    """Indexed bucket: per field, one RE2 Set and one literal index give the rules worth testing.

    A rule is a candidate when one of its required tests holds (``required_tests``); rules without
    such tests (only negations, numbers...) are always tested. Only candidates run their condition.
    """
    always: list[int] = []
    regexes: dict[FieldPath, dict[str, list[int]]] = {}
    literals: dict[tuple[FieldPath, bool], list[tuple[str, str, int]]] = {}
    for i, rule in rules:
        req = required_tests(rule.condition)
        if req is None:
            always.append(i)
            continue
        for test in req:
            if isinstance(test, RegexMatch):
                regexes.setdefault(test.field, {}).setdefault(test.pattern, []).append(i)
            else:
                value = test.value.lower() if test.ignore_case else test.value
                literals.setdefault((test.field, test.ignore_case), []).append((test.op, value, i))
    body = [f"    cand = set({gen.const(('always', tuple(always)), lambda: frozenset(always), 'a')})"]
    for path, by_pattern in regexes.items():
        var = gen.var(path)
        patterns = list(by_pattern)
        rset = gen.const(("set", tuple(patterns)), lambda p=patterns: runtime.RegexSet(p), "s")  # type: ignore[misc]
        table = [tuple(by_pattern[p]) for p in patterns]
        tname = gen.const(("table", name, path), lambda t=table: t, "t")  # type: ignore[misc]
        body.append(f"    for i in {rset}({var}):")
        body.append(f"        cand.update({tname}[i])")
    for (path, ignore_case), entries in literals.items():
        var = gen.low(path) if ignore_case else gen.var(path)
        index = gen.const(("literals", name, path, ignore_case), partial(runtime.LiteralIndex, entries), "li")
        body.append(f"    cand.update({index}({var}))")
    funcs = {i: rule_fn(i) for i, _ in rules}
    fmap = gen.const(("funcs", name), lambda: {i: gen.ns[f] for i, f in funcs.items()}, "m")
    body.append(f"    return [i for i in sorted(cand) if {fmap}[i](ev, ed, cm)]")
    return _finish_source(name, body, gen, "")


class Bucket:
    """The rules one (channel, EventID) combination can match, in load order, and their function.

    A lazy bucket generates and compiles its function on first use of ``fn`` or ``source``.
    """

    def __init__(self, indices: tuple[int, ...], build: Callable[[], tuple[BucketFn, str]]) -> None:
        self.indices = indices
        self._build: Callable[[], tuple[BucketFn, str]] | None = build
        self._fn: BucketFn | None = None
        self._source = ""

    @property
    def compiled(self) -> bool:
        return self._build is None

    def _compile(self) -> None:
        build = self._build
        if build is not None:
            self._fn, self._source = build()
            self._build = None

    @property
    def fn(self) -> BucketFn:
        if self._build is not None:
            self._compile()
        return self._fn  # type: ignore[return-value]

    @property
    def source(self) -> str:
        if self._build is not None:
            self._compile()
        return self._source


@dataclass
class CompiledRules:
    """Dispatch tables: exact (channel, id), channel only, and everything else."""

    by_key: dict[tuple[str, int], Bucket]
    by_channel: dict[str, Bucket]
    default: Bucket
    uses_computer: bool

    def buckets(self) -> list[Bucket]:
        """Every distinct bucket (several keys may share one)."""
        seen: dict[int, Bucket] = {}
        for b in [self.default, *self.by_channel.values(), *self.by_key.values()]:
            seen.setdefault(id(b), b)
        return list(seen.values())

    def compile_all(self) -> None:
        """Generate every bucket's function now (a lazy compile leaves them for their first event)."""
        for b in self.buckets():
            b.fn  # noqa: B018 - compiles it

    def bucket(self, channel: str, event_id: int) -> Bucket:
        b = self.by_key.get((channel, event_id))
        if b is None:
            b = self.by_channel.get(channel, self.default)
        return b


def check_ir(node: Node) -> str | None:
    """Why ``node`` cannot compile (first problem found), or None."""
    import ipaddress

    import re2

    stack = [node]
    while stack:
        n = stack.pop()
        try:
            if isinstance(n, (And, Or)):
                stack.extend(n.children)
            elif isinstance(n, Not):
                stack.append(n.child)
            elif isinstance(n, RegexMatch):  # the size decides set or single search: measure it once
                if runtime.known_program_size(n.pattern) is None:  # else compiled before (or cached)
                    runtime.note_program_size(n.pattern, int(re2.compile(n.pattern)._regexp.ProgramSize()))
            elif isinstance(n, KeywordMatch) and n.op == "regex":
                re2.compile(n.value)
            elif isinstance(n, ContainerMatch):
                if n.group not in re2.compile(n.pattern).groupindex:
                    return f"extract regex {n.pattern!r} has no group {n.group!r}"
            elif isinstance(n, CidrMatch):
                for net in n.networks:
                    ipaddress.ip_network(net, strict=False)
            elif not isinstance(n, (StrMatch, NumCmp, FlagMatch, FieldRefMatch, Exists, Const, KeywordMatch)):
                return f"unknown IR node {type(n).__name__}"
        except re2.error as err:
            msg = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else str(err)
            return f"invalid regular expression in {n!r}: {msg}"
        except ValueError as err:
            return f"invalid network in {n!r}: {err}"
    return None


#: Buckets with at least this many rules are indexed by their required tests (see _indexed_source).
INDEX_MIN = 200


def compile_rules(
    rules: Sequence[RuleIR | None],
    containers: Mapping[str, set[str]],
    index_min: int | None = None,
    *,
    lazy: bool = False,
) -> CompiledRules:
    """Compile the enabled rules (``None`` = disabled slot, keeps indices aligned with load order).

    Small buckets evaluate every rule inline; buckets of ``index_min`` rules or more first look up
    the tests each rule requires (per field: one RE2 Set for the regexes, one literal index for
    equality/prefix/suffix tests) and test only the rules that can match. With ``lazy``, only the
    dispatch tables are built here and each bucket's code is generated on its first use (thread
    safe): a rule set of thousands of rules of which a scan's events reach a few buckets compiles
    only those.
    """
    if index_min is None:
        index_min = INDEX_MIN
    compiled = _compile_rules(rules, containers, index_min)
    if not lazy:
        compiled.compile_all()
    return compiled


_COMPILE_LOCK = threading.RLock()


def _compile_rules(
    rules: Sequence[RuleIR | None], containers: Mapping[str, set[str]], index_min: int
) -> CompiledRules:
    ns: dict[str, Any] = {
        "_M": runtime.MISSING,
        "_S": runtime.value_text,
        "_field": runtime.field,
        "_num_go": runtime.num_go,
        "_num_plain": runtime.num_plain,
        "_flag": runtime.flag,
        "_kw": runtime.event_strings,
        "_containers": containers,
    }
    shared: dict[Any, str] = {}
    everywhere: list[int] = []
    any_id: dict[str, list[int]] = {}
    exact: dict[tuple[str, int], list[int]] = {}
    for i, rule in enumerate(rules):
        if rule is None:
            continue
        if not rule.events:
            everywhere.append(i)
        for channel, ids in rule.events:
            if not ids:
                any_id.setdefault(channel, []).append(i)
            for eid in ids:
                exact.setdefault((channel, eid), []).append(i)
    cache: dict[tuple[int, ...], Bucket] = {}
    rule_fns: dict[int, str] = {}

    def rule_fn(i: int) -> str:
        fname = rule_fns.get(i)
        if fname is None:
            fname = rule_fns[i] = f"_rule{i}"
            src = _rule_source(fname, rules[i], _Gen(ns, shared))  # type: ignore[arg-type]
            exec(compile(src, f"<vigil rule {i}>", "exec"), ns)  # noqa: S102 - our own generated code
        return fname

    def build(name: str, key: tuple[int, ...]) -> tuple[BucketFn, str]:
        with _COMPILE_LOCK:  # buckets share the namespace and the shared-object names
            old_limit = sys.getrecursionlimit()
            sys.setrecursionlimit(max(old_limit, 20000))  # deep IR trees recurse in _expr
            try:
                gen = _Gen(ns, shared)
                members = [(i, rules[i]) for i in key]
                if len(key) >= index_min:
                    src = _indexed_source(name, members, gen, rule_fn)  # type: ignore[arg-type]
                else:
                    src = _bucket_source(name, members, gen)  # type: ignore[arg-type]
                exec(compile(src, f"<vigil rules {name}>", "exec"), ns)  # noqa: S102 - our own generated code
            finally:
                sys.setrecursionlimit(old_limit)
            return ns[name], src

    def bucket(indices: list[int]) -> Bucket:
        key = tuple(sorted(set(indices)))
        b = cache.get(key)
        if b is None:
            b = cache[key] = Bucket(key, partial(build, f"_bucket{len(cache)}", key))
        return b

    default = bucket(everywhere)
    by_channel = {ch: bucket(ids + everywhere) for ch, ids in any_id.items()}
    by_key = {k: bucket(ids + any_id.get(k[0], []) + everywhere) for k, ids in exact.items()}
    uses_computer = any(r is not None and r.computers for r in rules)
    return CompiledRules(by_key, by_channel, default, uses_computer)
