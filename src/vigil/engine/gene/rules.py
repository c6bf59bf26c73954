"""A decoded gene rule object to a RuleIR (gene v2.3.0 compile step, spec §1-§3 and §6)."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from vigil.engine.gene.condition import ConditionError, Formula, formula_vars, lower, parse
from vigil.engine.gene.matches import MatchError, parse_match
from vigil.engine.ir import And, Attack, Const, Node, Not, Or, RuleIR, SourceLocation

__all__ = ["CompiledGeneRule", "RuleCompileError", "compile_rule", "parse_schema"]

logger = logging.getLogger(__name__)

_VERSION = re.compile(r"\s*([+-]?\d+)(?:\.([+-]?\d+)(?:\.([+-]?\d+))?)?")


class RuleCompileError(ValueError):
    """A rule gene refuses (or would crash on); ``statement`` is the offending text, if any."""

    def __init__(self, message: str, statement: str | None = None) -> None:
        super().__init__(message)
        self.statement = statement


@dataclass(frozen=True, slots=True)
class CompiledGeneRule:
    ir: RuleIR
    disabled: str | None  # why gene disabled it at compile time (unknown container), else None
    raw: dict[str, Any]  # decoded rule after template expansion (what ``-dump`` prints)


def parse_schema(text: str) -> tuple[int, int, int]:
    """Go ``fmt.Sscanf(text, "%d.%d.%d")``, keeping what parsed before the first failure."""
    m = _VERSION.match(text)
    if m is None:
        return (0, 0, 0)
    return tuple(int(g) if g is not None else 0 for g in m.groups())  # type: ignore[return-value]


def apply_templates(statement: str, templates: Mapping[str, str]) -> str:
    if "{{" not in statement:
        return statement
    for name, value in templates.items():
        statement = statement.replace("{{" + name + "}}", value)
    return statement


def _to_ir(f: Formula, operands: Mapping[str, Node]) -> Node:
    if f is True or f is False:
        return Const(f)
    op = f[0]
    if op == "var":
        return operands[f[1]]
    if op == "not":
        return Not(_to_ir(f[1], operands))
    cls = And if op == "and" else Or
    children: list[Node] = []
    for part in f[1:]:
        node = _to_ir(part, operands)
        if isinstance(node, cls):
            children.extend(node.children)
        else:
            children.append(node)
    return cls(tuple(children))


def compile_rule(
    rule: dict[str, Any],
    templates: Mapping[str, str],
    containers: Collection[str],
    source: SourceLocation | None = None,
) -> CompiledGeneRule:
    """Compile one decoded (enabled) rule; RuleCompileError names the statement at fault."""
    name = rule["Name"]
    meta = rule["Meta"]
    matches = [apply_templates(s, templates) for s in rule["Matches"] or ()]
    raw = dict(rule, Matches=rule["Matches"] if rule["Matches"] is None else matches)
    operands: dict[str, Node] = {}
    disabled: str | None = None
    for statement in matches:
        try:
            parsed = parse_match(statement)
        except MatchError as err:
            raise RuleCompileError(str(err), statement) from None
        if parsed.container is not None and parsed.container not in containers:
            disabled = f'unknown container "{parsed.container}"'
            logger.warning('Unknown container "%s" used in rule "%s": rule disabled', parsed.container, name)
            break
        operands[parsed.name] = parsed.node
    condition: Node = Const(False)
    if disabled is None:
        text = rule["Condition"]
        try:
            elements = parse(text, operands)
            if not elements and not matches:
                condition = Const(True)
            else:
                formula = lower(elements)
                for unused in sorted(set(operands) - formula_vars(formula) - {e.name for e in elements}):
                    logger.info('Rule "%s" operand %s not used', name, unused)
                condition = _to_ir(formula, operands)
        except ConditionError as err:
            raise RuleCompileError(str(err), text) from None
    if parse_schema(meta["Schema"]) < (2, 0, 0):
        raise RuleCompileError(f"Expecting rule version >= 2.0.0, got Schema {meta['Schema']!r}")
    events = tuple((ch, tuple(ids)) for ch, ids in (meta["Events"] or {}).items())
    ir = RuleIR(
        name=name,
        condition=condition,
        events=events,
        computers=tuple(meta["Computers"] or ()),
        criticality=min(meta["Criticality"], 10),
        filter=meta["Filter"],
        actions=tuple(rule["Actions"] or ()),
        attack=tuple(Attack(a["ID"], a["Tactic"], a["Description"], a["Reference"]) for a in meta["ATTACK"]),
        tags=tuple(rule["Tags"] or ()),
        source=source,
    )
    return CompiledGeneRule(ir, disabled, raw)
