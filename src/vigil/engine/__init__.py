"""vigil.engine: the Gene-compatible rule engine (load, compile to Python, match).

Public API: ``Engine`` (load rules, add containers, ``match``/``scan`` events), ``MatchResult``,
``RuleInfo``, ``RuleError``/``RuleLoadError``, ``check_path`` and ``register_loader`` (other rule
formats, e.g. Sigma ``.yml``). The predicate IR lives in ``vigil.engine.ir``.
"""

from vigil.engine.engine import Engine, MatchResult, RuleInfo, check_path
from vigil.engine.errors import RuleError, RuleLoadError
from vigil.engine.loader import RuleFileLoader, register_loader

__all__ = [
    "Engine",
    "MatchResult",
    "RuleError",
    "RuleFileLoader",
    "RuleInfo",
    "RuleLoadError",
    "check_path",
    "register_loader",
]
