"""Sigma rule metadata -> what a vigil detection reports (criticality, ATT&CK, tags).

Level to criticality (gene's 0-10 scale): ``informational`` 1, ``low`` 3, ``medium`` 5,
``high`` 8, ``critical`` 10; a rule without a level gets 0. ATT&CK tags: ``attack.tNNNN[.NNN]``
become techniques (``T1059.001``), ``attack.<tactic-name>`` the tactic of every technique of the
rule (the first one when there are several; gene's ATTACK entries hold one tactic each). Groups
and software (``attack.g0032``, ``attack.s0002``) and other namespaces stay in the tags.
"""

from __future__ import annotations

import re

from sigma.rule import SigmaLevel, SigmaRuleTag

from vigil.engine.ir import Attack

__all__ = ["CRITICALITY", "attack_of", "criticality_of", "tags_of"]

CRITICALITY: dict[str, int] = {"informational": 1, "low": 3, "medium": 5, "high": 8, "critical": 10}

_TECHNIQUE = re.compile(r"^t(\d{4})(?:\.(\d{3}))?$")
_OTHER_ATTACK = re.compile(r"^[gsm]\d{4}$")


def criticality_of(level: SigmaLevel | None) -> int:
    if level is None:
        return 0
    return CRITICALITY.get(level.name.lower(), 0)


def tags_of(tags: list[SigmaRuleTag]) -> tuple[str, ...]:
    return tuple(f"{t.namespace}.{t.name}" for t in tags)


def attack_of(tags: list[SigmaRuleTag]) -> tuple[Attack, ...]:
    techniques: list[str] = []
    tactics: list[str] = []
    for tag in tags:
        if tag.namespace != "attack":
            continue
        name = tag.name.lower()
        m = _TECHNIQUE.match(name)
        if m:
            tid = f"T{m.group(1)}" + (f".{m.group(2)}" if m.group(2) else "")
            if tid not in techniques:
                techniques.append(tid)
        elif not _OTHER_ATTACK.match(name) and name not in tactics:
            tactics.append(name)
    tactic = tactics[0] if tactics else ""
    return tuple(
        Attack(id=t, tactic=tactic, reference="https://attack.mitre.org/techniques/" + t.replace(".", "/"))
        for t in techniques
    )
