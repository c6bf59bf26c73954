"""The Gene front end: gene v2.3.0 rule files (JSON objects) to the predicate IR.

``decode`` reads rule objects the way Go's encoding/json does, ``matches`` classifies and compiles
match statements, ``condition`` ports gene's condition tokenizer and walk, ``rules`` puts them
together into a ``RuleIR``. ``vigil.engine.Engine.load_path`` drives it.
"""

from vigil.engine.gene.condition import ConditionError, lower, parse
from vigil.engine.gene.matches import MatchError, parse_match
from vigil.engine.gene.rules import CompiledGeneRule, RuleCompileError, compile_rule

__all__ = [
    "CompiledGeneRule",
    "ConditionError",
    "MatchError",
    "RuleCompileError",
    "compile_rule",
    "lower",
    "parse",
    "parse_match",
]
