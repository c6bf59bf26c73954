"""The Gene rules the manager serves: validation before storage, the served body and its sha256.

:func:`compile_errors` is the one place that decides whether uploaded rules compile (the engine
does). :class:`RuleCache` also loads the served rules into an engine so detection reports take
each rule's criticality and ATT&CK data from the engine's view of it; its ``info`` covers the
Sigma rules too (``RuleCache.sigma``, :mod:`vigil.manager.sigma_rules`), by title, since a Sigma
detection's Signature is the rule's title.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Collection, Sequence
from typing import Any

import orjson

from vigil.engine import Engine, RuleLoadError
from vigil.manager.scoring import RuleInfo
from vigil.manager.sigma_rules import SigmaRuleCache
from vigil.manager.store.base import Store

__all__ = ["RuleCache", "compile_errors", "rule_info"]

logger = logging.getLogger(__name__)


def _error(source: str, line: int, rule: str, statement: str, message: str) -> dict[str, Any]:
    return {"file": source, "line": line, "rule": rule, "statement": statement, "message": message}


def compile_errors(
    rules: Sequence[Any], source: str = "<request>", taken: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Every error of ``rules``, from scratch engines (WHIDS compiles before storing); [] when all load.

    Each rule is compiled on its own, so one bad rule never hides the errors of another; ``line``
    is the rule's 1-based position in ``rules``. A name used twice in one request is reported too,
    since the second rule would silently replace the first in the store, and so is a name in
    ``taken`` (the titles of the stored Sigma rules: agents load both sets into one engine).
    """
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, rule in enumerate(rules, start=1):
        try:
            Engine().load_text(orjson.dumps(rule).decode(), source=source)
        except RuleLoadError as exc:
            errors.extend(
                _error(e.file, index, e.rule or "", e.statement or "", e.message) for e in exc.errors
            )
        name = rule.get("Name") if isinstance(rule, dict) else None
        if isinstance(name, str) and name in seen:
            errors.append(
                _error(source, index, name, "Name", f"duplicate rule name (also rule {seen[name]})")
            )
        elif isinstance(name, str) and name in taken:
            errors.append(_error(source, index, name, "Name", "a stored Sigma rule has this title"))
        elif isinstance(name, str):
            seen[name] = index
        if isinstance(rule, dict) and not (isinstance(name, str) and name.strip()):
            errors.append(_error(source, index, "", "Name", "rule has no Name"))
    return errors


def rule_info(rule: dict[str, Any]) -> RuleInfo:
    meta = rule.get("Meta") or {}
    attack = meta.get("ATTACK") or []
    techniques = tuple(dict.fromkeys(a["ID"] for a in attack if isinstance(a, dict) and a.get("ID")))
    tactics = tuple(dict.fromkeys(a["Tactic"] for a in attack if isinstance(a, dict) and a.get("Tactic")))
    crit = meta.get("Criticality", 0)
    return RuleInfo(crit if isinstance(crit, int) else 0, techniques, tactics)


class RuleCache:
    """The served rule set (``GET /rules`` body and sha256) and the reducer's view of each rule."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        #: held by the admin routes from validation to the reload of either set, so two uploads
        #: cannot race (Gene names and Sigma titles share one name space).
        self.write_lock = threading.Lock()
        self._gene_info: dict[str, RuleInfo] = {}
        #: signature -> criticality and ATT&CK data, for Gene names and Sigma titles alike.
        self.info: dict[str, RuleInfo] = {}
        self.sigma = SigmaRuleCache(store)
        self.reload()

    def reload_sigma(self) -> None:
        """Reload the Sigma set after a change (the Gene set and its sha256 stay as they are)."""
        self.sigma.reload()
        with self._lock:
            self.info = {**self.sigma.info, **self._gene_info}

    def reload(self) -> None:
        rows = self._store.list_rules()
        rules = {r["name"]: orjson.loads(r["body"]) for r in rows}
        body = "".join(r["body"] + "\n" for r in rows).encode()
        with self._lock:
            self.rules: dict[str, dict[str, Any]] = rules
            self.body = body
            self.sha256 = hashlib.sha256(body).hexdigest()
            self._gene_info = self._engine_info(body.decode()) or {
                name: rule_info(r) for name, r in rules.items()
            }
            self.info = {**self.sigma.info, **self._gene_info}

    @staticmethod
    def _engine_info(text: str) -> dict[str, RuleInfo] | None:
        engine = Engine()
        try:
            engine.load_text(text, source="<stored rules>")
        except RuleLoadError as exc:  # stored by an older version; fall back to the rules' Meta
            logger.warning("stored rules do not load in this engine: %s", exc)
            return None
        return {
            r.name: RuleInfo(
                r.criticality,
                tuple(dict.fromkeys(a.id for a in r.attack if a.id)),
                tuple(dict.fromkeys(a.tactic for a in r.attack if a.tactic)),
            )
            for r in engine.rules
        }
