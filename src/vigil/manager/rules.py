"""The Gene rules the manager serves: validation before storage, the served body and its sha256.

:func:`compile_errors` is the one place that decides whether uploaded rules compile; it uses the
engine when ``vigil.engine`` provides ``Engine`` and ``RuleLoadError``, and a structural check of
the Gene rule format until then.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Sequence
from typing import Any

import orjson

from vigil.manager.scoring import RuleInfo
from vigil.manager.store.base import Store

__all__ = ["RuleCache", "compile_errors", "rule_info"]

logger = logging.getLogger(__name__)

_MATCH = re.compile(r"\s*\$(\w+)\s*:\s*(.+?)\s*\Z", re.S)
_MATCH_OPERATOR = re.compile(
    r"^\s*(\S+)\s*(=|~=|&=|<=|>=|<|>)\s*(.*)\Z|^\s*extract\(.*\)\s+in\s+\w+\s*\Z", re.S
)
_CONDITION_TOKEN = re.compile(r"\s*(\$\w+|!|and|or|not|&&|\|\||\(|\))", re.I)


def _error(source: str, line: int, rule: str, statement: str, message: str) -> dict[str, Any]:
    return {"file": source, "line": line, "rule": rule, "statement": statement, "message": message}


def _check_condition(condition: str, variables: set[str]) -> str | None:
    pos = 0
    depth = 0
    expect_operand = True
    while pos < len(condition):
        if condition[pos:].strip() == "":
            break
        match = _CONDITION_TOKEN.match(condition, pos)
        if match is None:
            return f"unexpected text {condition[pos:].strip()[:30]!r}"
        tok = match.group(1).lower()
        pos = match.end()
        if tok.startswith("$"):
            if not expect_operand:
                return f"missing operator before {match.group(1)}"
            if match.group(1)[1:] not in variables:
                return f"unknown operand {match.group(1)}"
            expect_operand = False
        elif tok in ("!", "not"):
            if not expect_operand:
                return "misplaced negation"
        elif tok == "(":
            if not expect_operand:
                return "missing operator before '('"
            depth += 1
        elif tok == ")":
            depth -= 1
            if depth < 0 or expect_operand:
                return "unbalanced ')'"
        elif expect_operand:
            return f"operator {tok!r} without left operand"
        else:
            expect_operand = True
    if depth != 0:
        return "unbalanced '('"
    if expect_operand and condition.strip():
        return "condition ends with an operator"
    return None


def _structural_errors(rule: Any, source: str, line: int) -> list[dict[str, Any]]:
    if not isinstance(rule, dict):
        return [_error(source, line, "", "", "rule must be a JSON object")]
    name = rule.get("Name")
    rname = name if isinstance(name, str) else ""
    errors: list[dict[str, Any]] = []
    if not isinstance(name, str) or not name.strip():
        errors.append(_error(source, line, rname, "Name", "Name must be a non-empty string"))
    meta = rule.get("Meta", {})
    if not isinstance(meta, dict):
        errors.append(_error(source, line, rname, "Meta", "Meta must be an object"))
        meta = {}
    crit = meta.get("Criticality", 0)
    if not isinstance(crit, int) or isinstance(crit, bool) or not 0 <= crit <= 10:
        errors.append(_error(source, line, rname, "Meta.Criticality", "Criticality must be an integer 0-10"))
    events = meta.get("Events", {})
    if not isinstance(events, dict) or not all(
        isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v)
        for v in events.values()
    ):
        errors.append(_error(source, line, rname, "Meta.Events", "Events must map channels to EventID lists"))
    attack = meta.get("ATTACK", [])
    if not isinstance(attack, list) or not all(
        isinstance(a, dict) and isinstance(a.get("ID"), str) for a in attack
    ):
        errors.append(
            _error(source, line, rname, "Meta.ATTACK", "ATTACK must be a list of {ID, Tactic, ...}")
        )
    for key in ("Tags", "Actions"):
        value = rule.get(key, [])
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            errors.append(_error(source, line, rname, key, f"{key} must be a list of strings"))
    variables: set[str] = set()
    matches = rule.get("Matches", [])
    if matches is None:
        matches = []
    if not isinstance(matches, list):
        errors.append(_error(source, line, rname, "Matches", "Matches must be a list of strings"))
        matches = []
    for statement in matches:
        if not isinstance(statement, str):
            errors.append(_error(source, line, rname, str(statement), "match statement must be a string"))
            continue
        found = _MATCH.match(statement)
        if found is None or not _MATCH_OPERATOR.match(found.group(2)):
            errors.append(
                _error(source, line, rname, statement, "not a match statement ($name: Field op 'value')")
            )
            continue
        if found.group(1) in variables:
            errors.append(_error(source, line, rname, statement, f"duplicate operand ${found.group(1)}"))
        variables.add(found.group(1))
    condition = rule.get("Condition", "")
    if not isinstance(condition, str):
        errors.append(_error(source, line, rname, "Condition", "Condition must be a string"))
    else:
        problem = _check_condition(condition, variables)
        if problem is not None:
            errors.append(_error(source, line, rname, condition, f"bad condition: {problem}"))
        elif variables and not condition.strip():
            errors.append(_error(source, line, rname, "Condition", "Matches given but Condition is empty"))
    return errors


def _engine_errors(rules: Sequence[Any], source: str) -> list[dict[str, Any]] | None:
    """Errors from the real engine, or None when the engine is not available in this build."""
    try:
        from vigil import engine
    except ImportError:
        return None
    engine_cls = getattr(engine, "Engine", None)
    load_error = getattr(engine, "RuleLoadError", None)
    if engine_cls is None or load_error is None:
        return None
    text = "\n".join(orjson.dumps(rule).decode() for rule in rules)
    try:
        engine_cls().load_text(text, source=source)
    except load_error as exc:
        return [
            _error(
                str(getattr(e, "file", source)),
                int(getattr(e, "line", 0) or 0),
                str(getattr(e, "rule", "") or ""),
                str(getattr(e, "statement", "") or ""),
                str(getattr(e, "message", e)),
            )
            for e in getattr(exc, "errors", [exc])
        ]
    return []


def compile_errors(rules: Sequence[Any], source: str = "<request>") -> list[dict[str, Any]]:
    """Every error of ``rules`` (line = the rule's 1-based position); empty when all compile.

    Each rule that passes the structural checks is also compiled by the engine on its own, so one
    bad rule never hides the errors of another.
    """
    errors: list[dict[str, Any]] = []
    names: dict[str, int] = {}
    for index, rule in enumerate(rules, start=1):
        structural = _structural_errors(rule, source, index)
        errors.extend(structural)
        if isinstance(rule, dict) and isinstance(rule.get("Name"), str):
            if rule["Name"] in names:
                errors.append(_error(source, index, rule["Name"], "Name", "duplicate rule name in request"))
            names[rule["Name"]] = index
        if not structural:
            for error in _engine_errors([rule], source) or []:
                error["line"] = index
                errors.append(error)
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
        self.reload()

    def reload(self) -> None:
        rows = self._store.list_rules()
        rules = {r["name"]: orjson.loads(r["body"]) for r in rows}
        body = "".join(r["body"] + "\n" for r in rows).encode()
        with self._lock:
            self.rules: dict[str, dict[str, Any]] = rules
            self.body = body
            self.sha256 = hashlib.sha256(body).hexdigest()
            self.info = {name: rule_info(rule) for name, rule in rules.items()}
