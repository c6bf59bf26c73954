"""Gene condition strings, exactly as gene v2.3.0 tokenizes and evaluates them (spec §3).

gene does not parse conditions with operator precedence: it splits on single spaces, builds a flat
list of elements (operand, ``!``, and/or) tagged with their parenthesis level, and walks it with a
right-recursive ``step``. This module implements that literally (``evaluate``, used as the reference
in tests) and lowers a condition to an equivalent boolean formula by running the same ``step`` on
symbolic values: the continuation point of the walk is tracked per path, and paths are split only
where gene's walk itself branches on a value. Matcher reads are pure, so the formula is equivalent.

Conditions on which gene crashes (empty tokens from three spaces, a ``!`` followed by nothing or
by an operator, reachable for some operand values) are rejected with ``ConditionError``.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Union

__all__ = [
    "ConditionCrash",
    "ConditionError",
    "Element",
    "Formula",
    "evaluate",
    "formula_eval",
    "formula_vars",
    "lower",
    "parse",
    "tokenize",
]

AND_WORDS = frozenset(("and", "&&", "AND"))
OR_WORDS = frozenset(("or", "||", "OR"))
OPERAND, NEG, OP_AND, OP_OR = 0, 1, 2, 3

# A formula is True/False, ("var", name), ("not", f), ("and", a, b) or ("or", a, b).
Formula = Union[bool, tuple]  # type: ignore[type-arg]  # noqa: UP007


class ConditionError(ValueError):
    """The condition cannot load: ``kind`` is ``syntax``, ``unknown`` (operand) or ``crash`` (gene panics)."""

    def __init__(self, message: str, kind: str = "syntax") -> None:
        super().__init__(message)
        self.kind = kind


class ConditionCrash(RuntimeError):
    """Raised by the reference evaluator where gene's walk would panic."""


@dataclass(slots=True)
class Element:
    kind: int
    name: str
    level: int
    group: int
    index: int
    next: Element | None = None


def tokenize(condition: str) -> list[str]:
    """gene's splitter, including its double-space quirk (the token after an empty one is not split)."""
    tokens = condition.split(" ")
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t == "":
            del tokens[i]
        elif len(t) > 1 and t[0] in "(!":
            tokens[i : i + 1] = [t[0], t[1:]]
        elif len(t) > 1:
            body = t[0] + t[1:].rstrip(")")
            tokens[i : i + 1] = [body] + [")"] * (len(t) - len(body))
        i += 1
    return tokens


def parse(condition: str, operands: Mapping[str, object] | None = None) -> list[Element]:
    """Build gene's element list; ``operands`` (the defined ``$names``) enables the unknown-operand check."""
    tokens = tokenize(condition)
    elements: list[Element] = []
    level = group = 0
    for tok in tokens:
        if tok == "":
            raise ConditionError(
                f"condition {condition!r} has an empty token (three consecutive spaces): gene crashes on it",
                "crash",
            )
        if tok in AND_WORDS:
            elements.append(Element(OP_AND, tok, level, group, len(elements)))
        elif tok in OR_WORDS:
            elements.append(Element(OP_OR, tok, level, group, len(elements)))
        elif tok[0] == "(":
            level += 1
        elif tok[0] == ")":
            group += 1
            level -= 1
        elif tok[0] == "!":
            elements.append(Element(NEG, "!", level, group, len(elements)))
        elif tok[0] == "$":
            elements.append(Element(OPERAND, tok, level, group, len(elements)))
        else:
            raise ConditionError(f"Failed to parse condition {condition!r}: unexpected token {tok!r}")
    for prev, nxt in itertools.pairwise(elements):
        prev.next = nxt
    if operands is not None:
        for e in elements:
            if e.kind == OPERAND and e.name not in operands:
                raise ConditionError(f"Unknown operand {e.name} in condition {condition!r}", "unknown")
    return elements


def _next_lower(e: Element) -> Element | None:
    n = e.next
    while n is not None and n.level >= e.level:
        n = n.next
    return n


# --------------------------------------------------------------------------- reference evaluator
def evaluate(elements: list[Element], read: Callable[[str], bool]) -> bool:
    """Run gene's walk on concrete values; ConditionCrash where gene panics."""
    if not elements:
        raise ConditionCrash("empty condition with match statements")
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 4 * len(elements) + 1000))
    try:
        nxt, v = _step(False, elements[0], read)
        while nxt is not None:
            nxt, v = _step(v, nxt, read)
        return v
    finally:
        sys.setrecursionlimit(old)


def _step(acc: bool, e: Element | None, read: Callable[[str], bool]) -> tuple[Element | None, bool]:
    if e is None:
        return None, acc
    if e.kind == OPERAND:
        v = read(e.name)
        if e.next is not None and e.next.level != e.level:
            return e.next, v
        return _step(v, e.next, read)
    if e.kind == OP_AND:
        if not acc:
            return _next_lower(e), False
        n, r = _step(False, e.next, read)
        return n, acc and r
    if e.kind == OP_OR:
        if acc:
            return _next_lower(e), True
        return _step(False, e.next, read)
    x = e.next
    if x is not None and x.kind == OPERAND:
        v = read(x.name)
        if x.level == e.level and x.group == e.group:
            if x.next is not None and x.next.level != e.level:
                return x.next, not v
            return _step(not v, x.next, read)
        n, v = _step(False, x, read)
        while n is not None and n.level > e.level:
            n, v = _step(v, n, read)
        return n, not v
    if x is not None and x.kind == NEG:
        n, v = _step(False, x, read)
        while n is not None and n.level > e.level:
            n, v = _step(v, n, read)
        return _step(not v, n, read)
    raise ConditionCrash("'!' not followed by an operand, '(' or '!'")


# --------------------------------------------------------------------------- symbolic lowering
def _not(a: Formula) -> Formula:
    if a is True or a is False:
        return not a
    if a[0] == "not":
        return a[1]  # type: ignore[no-any-return]
    return ("not", a)


def _and(a: Formula, b: Formula) -> Formula:
    if a is False or b is False:
        return False
    if a is True:
        return b
    if b is True or a == b:
        return a
    return ("and", a, b)


def _or(a: Formula, b: Formula) -> Formula:
    if a is True or b is True:
        return True
    if a is False:
        return b
    if b is False or a == b:
        return a
    return ("or", a, b)


_CRASH = -2  # pseudo continuation index of a path on which gene panics
_END = -1

# A path: (guard, continuation index, value); guards of the paths of one result are exclusive.
Path = tuple[Formula, int, Formula]


class _Lowerer:
    def __init__(self, elements: list[Element]) -> None:
        self.el = elements

    def idx(self, e: Element | None) -> int:
        return _END if e is None else e.index

    def get(self, i: int) -> Element | None:
        return None if i < 0 else self.el[i]

    def step(self, acc: Formula, e: Element | None) -> list[Path]:
        if e is None:
            return [(True, _END, acc)]
        if e.kind == OPERAND:
            v: Formula = ("var", e.name)
            if e.next is not None and e.next.level != e.level:
                return [(True, e.next.index, v)]
            return self.step(v, e.next)
        if e.kind in (OP_AND, OP_OR):
            is_and = e.kind == OP_AND
            low = self.idx(_next_lower(e))
            short: Formula = _not(acc) if is_and else acc  # gene jumps to `low` on this guard
            if short is True:
                return [(True, low, not is_and)]
            sub = self.step(False, e.next)
            if short is False:
                return sub if not is_and else [(g, n, _and(acc, r)) for g, n, r in sub]
            if all(n == low for _, n, _ in sub):
                comb = _and if is_and else _or
                return [(g, n, comb(acc, r)) for g, n, r in sub]
            return [(short, low, not is_and)] + [(_and(_not(short), g), n, r) for g, n, r in sub]
        x = e.next
        if x is not None and x.kind == OPERAND:
            v = ("var", x.name)
            if x.level == e.level and x.group == e.group:
                if x.next is not None and x.next.level != e.level:
                    return [(True, x.next.index, _not(v))]
                return self.step(_not(v), x.next)
            paths = self.drain(self.step(False, x), e.level)
            return [(g, n, v2 if n == _CRASH else _not(v2)) for g, n, v2 in paths]
        if x is not None and x.kind == NEG:
            paths = self.drain(self.step(False, x), e.level)
            out: list[Path] = []
            for g, n, v2 in paths:
                if n == _CRASH:
                    out.append((g, n, v2))
                    continue
                out.extend((_and(g, g2), n2, r2) for g2, n2, r2 in self.step(_not(v2), self.get(n)))
            return _merge(out)
        return [(True, _CRASH, False)]

    def drain(self, paths: list[Path], level: int) -> list[Path]:
        """Continue each path while its continuation is deeper than ``level``."""
        done: list[Path] = []
        while paths:
            todo: list[Path] = []
            for g, n, v in paths:
                e = self.get(n)
                if e is None or e.level <= level:
                    done.append((g, n, v))
                else:
                    todo.extend((_and(g, g2), n2, r2) for g2, n2, r2 in self.step(v, e))
            paths = _merge(todo)
        return _merge(done)


def _merge(paths: list[Path]) -> list[Path]:
    """Join paths that continue at the same element (guards are exclusive, so values can be muxed)."""
    if len(paths) < 2:
        return paths
    by_next: dict[int, Path] = {}
    for g, n, v in paths:
        if g is False:
            continue
        if n in by_next:
            g0, _, v0 = by_next[n]
            by_next[n] = (_or(g0, g), n, _or(_and(g0, v0), _and(g, v)))
        else:
            by_next[n] = (g, n, v)
    return list(by_next.values())


def formula_vars(f: Formula) -> set[str]:
    out: set[str] = set()
    stack = [f]
    while stack:
        x = stack.pop()
        if x is True or x is False:
            continue
        if x[0] == "var":
            out.add(x[1])
        else:
            stack.extend(x[1:])
    return out


def formula_eval(f: Formula, values: Mapping[str, bool]) -> bool:
    if f is True or f is False:
        return f
    op = f[0]
    if op == "var":
        return values[f[1]]
    if op == "not":
        return not formula_eval(f[1], values)
    if op == "and":
        return formula_eval(f[1], values) and formula_eval(f[2], values)
    return formula_eval(f[1], values) or formula_eval(f[2], values)


def _satisfiable(f: Formula, max_vars: int = 16) -> bool:
    if f is True or f is False:
        return f
    names = sorted(formula_vars(f))
    if len(names) > max_vars:
        return True  # too many to enumerate: assume gene can crash
    return any(formula_eval(f, dict(zip(names, bits, strict=True))) for bits in _assignments(len(names)))


def _assignments(n: int) -> Iterator[tuple[bool, ...]]:
    return itertools.product((False, True), repeat=n)


def lower(elements: list[Element]) -> Formula:
    """An equivalent formula of gene's walk; ConditionError if some operand values make gene crash."""
    if not elements:
        raise ConditionError("empty condition with match statements: gene crashes on it", "crash")
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 8 * len(elements) + 1000))
    try:
        low = _Lowerer(elements)
        paths = low.drain(low.step(False, elements[0]), -(1 << 30))
    except RecursionError:
        raise ConditionError("condition too deeply nested") from None
    finally:
        sys.setrecursionlimit(old)
    result: Formula = False
    crash: Formula = False
    for g, n, v in paths:
        if n == _CRASH:
            crash = _or(crash, g)
        else:
            result = _or(result, _and(g, v))
    if _satisfiable(crash):
        raise ConditionError(
            "a '!' is followed by nothing or by an operator for some operand values: gene crashes on it",
            "crash",
        )
    return result
