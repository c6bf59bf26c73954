"""One parsed Sigma rule (pySigma ``SigmaRule``) -> one vigil ``RuleIR``.

The condition is parsed by pySigma, which resolves identifiers, ``1 of``/``all of`` selectors
(``them`` and ``*`` patterns), parentheses and ``not`` into a tree of ``ConditionAND``/``OR``/``NOT``
whose leaves are ``field == value`` and keyword expressions. This module walks that tree into IR
nodes; several ``condition`` entries in one rule are OR-linked (Sigma specification).
"""

from __future__ import annotations

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError, SigmaRegularExpressionError
from sigma.rule import SigmaRule

from vigil.engine.ir import And, Node, Not, Or, RuleIR, SourceLocation
from vigil.engine.sigma.errors import SigmaFrontEndError, SigmaParseError, UnsupportedConstruct
from vigil.engine.sigma.logsources import map_logsource
from vigil.engine.sigma.meta import attack_of, criticality_of, tags_of
from vigil.engine.sigma.optimize import hoist_event_ids, merge_keywords, merge_string_tests
from vigil.engine.sigma.options import CompileOptions
from vigil.engine.sigma.results import CompiledRule
from vigil.engine.sigma.values import field_value_node, keyword_node

__all__ = ["CompiledRule", "compile_condition", "compile_rule", "sigma_error_message"]

ConditionTree = ConditionItem | ConditionFieldEqualsValueExpression | ConditionValueExpression


def _flatten(kind: type[And] | type[Or], children: list[Node]) -> tuple[Node, ...]:
    out: list[Node] = []
    for child in children:
        if isinstance(child, kind):
            out.extend(child.children)
        else:
            out.append(child)
    return tuple(out)


def compile_condition(tree: ConditionTree, opts: CompileOptions, channels: tuple[str, ...] = ()) -> Node:
    """IR of a postprocessed pySigma condition tree."""
    match tree:
        case ConditionAND():
            children = [compile_condition(a, opts, channels) for a in tree.args if a is not None]
            return children[0] if len(children) == 1 else And(_flatten(And, children))
        case ConditionOR():
            children = [compile_condition(a, opts, channels) for a in tree.args if a is not None]
            return children[0] if len(children) == 1 else Or(_flatten(Or, children))
        case ConditionNOT():
            (child,) = tree.args
            inner = compile_condition(child, opts, channels)  # type: ignore[arg-type]
            return inner.child if isinstance(inner, Not) else Not(inner)
        case ConditionFieldEqualsValueExpression():
            return field_value_node(tree.field, tree.value, opts, channels)
        case ConditionValueExpression():
            return keyword_node(tree.value, opts)
    raise UnsupportedConstruct(f"condition element {type(tree).__name__} has no vigil IR form")


def sigma_error_message(e: SigmaError) -> str:
    """pySigma's message without the absolute file path it appends (vigil reports the path)."""
    text = str(e)
    return text.replace(f" in {e.source}", "") if e.source is not None else text


def _translate(errors: list[SigmaError]) -> SigmaFrontEndError:
    """pySigma's errors of a rule as one vigil error (regex errors are an unsupported construct)."""
    reason = "; ".join(sigma_error_message(e) for e in errors)
    if all(isinstance(e, SigmaRegularExpressionError) for e in errors):
        return UnsupportedConstruct(f"{reason} (vigil's regex dialect is RE2)")
    return SigmaParseError(reason)


def compile_rule(
    rule: SigmaRule, opts: CompileOptions | None = None, *, path: str = "", line: int = 0
) -> CompiledRule:
    """Compile one Sigma rule, or raise a :class:`SigmaFrontEndError` naming the rule and the reason."""
    opts = opts or CompileOptions()
    rule_id = str(rule.id) if rule.id is not None else None
    try:
        if rule.errors:
            raise _translate(rule.errors)
        mapping = map_logsource(rule.logsource)
        conditions: list[Node] = []
        for cond in rule.detection.parsed_condition:
            tree = cond.parse()
            if tree is None:
                raise UnsupportedConstruct(f"condition {cond.condition!r} selects no detection item")
            conditions.append(compile_condition(tree, opts, tuple(c for c, _ in mapping.events)))
        if not conditions:
            raise SigmaParseError("rule has no condition")
        condition = merge_string_tests(
            merge_keywords(conditions[0] if len(conditions) == 1 else Or(_flatten(Or, conditions)))
        )
    except SigmaFrontEndError as e:
        raise e.located(path=path, rule_id=rule_id, title=rule.title) from None
    except SigmaError as e:
        raise SigmaParseError(sigma_error_message(e), path=path, rule_id=rule_id, title=rule.title) from e
    ir = RuleIR(
        name=rule.title,
        condition=condition,
        events=hoist_event_ids(condition, mapping.events),
        criticality=criticality_of(rule.level),
        attack=attack_of(rule.tags),
        tags=tags_of(rule.tags),
        description=rule.description or "",
        source=SourceLocation(path, line) if path else None,
        sigma_id=rule_id,
    )
    return CompiledRule(ir, mapping.producer)
