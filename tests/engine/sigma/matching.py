"""Match a compiled Sigma rule against an event through the real engine (tests only).

Every call also runs the reference evaluator (``reference.py``, the IR contract read literally)
and fails when the two disagree, so each semantics test checks the front end's IR, the engine's
compilation of it, and their agreement.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from tests.engine.sigma import reference
from vigil.engine import Engine
from vigil.engine.ir import RuleIR


@lru_cache(maxsize=256)
def _engine(rule: RuleIR) -> Engine:
    engine = Engine()
    engine.add_rule(rule)
    engine.compile()
    return engine


def matches(rule: RuleIR, event: dict[str, Any]) -> bool:
    result = _engine(rule).match(event)
    got = bool(result.signature)
    expected = reference.matches(rule, event)
    assert got == expected, f"engine says {got}, reference evaluator says {expected} for {rule.condition!r}"
    if got:
        assert result.signature == [rule.name] and result.sigma_ids == (
            [rule.sigma_id] if rule.sigma_id else []
        )
    return got
