"""Rule metadata carried into RuleIR: title, id, level -> criticality, ATT&CK tags."""

from __future__ import annotations

from vigil.engine.ir import Attack
from vigil.engine.sigma import load_sigma_text

RULE = """title: Suspicious Thing
id: 0e6b2d3a-8a4a-4e77-9d34-1a2b3c4d5e6f
description: Detects a thing
level: {level}
tags:
    - attack.execution
    - attack.t1059.001
    - attack.t1204
    - attack.g0032
    - cve.2021-44228
logsource:
    product: windows
    category: process_creation
detection:
    sel:
        Image|endswith: '\\x.exe'
    condition: sel
"""


def test_level_to_criticality() -> None:
    expected = {"informational": 1, "low": 3, "medium": 5, "high": 8, "critical": 10}
    for level, criticality in expected.items():
        (rule,) = load_sigma_text(RULE.format(level=level), "r.yml").rules
        assert rule.ir.criticality == criticality


def test_title_id_description_tags_attack_source() -> None:
    (rule,) = load_sigma_text(RULE.format(level="high"), "r.yml").rules
    ir = rule.ir
    assert ir.name == "Suspicious Thing"
    assert ir.sigma_id == "0e6b2d3a-8a4a-4e77-9d34-1a2b3c4d5e6f"
    assert ir.description == "Detects a thing"
    assert ir.attack == (
        Attack("T1059.001", "execution", reference="https://attack.mitre.org/techniques/T1059/001"),
        Attack("T1204", "execution", reference="https://attack.mitre.org/techniques/T1204"),
    )
    assert ir.tags == (
        "attack.execution",
        "attack.t1059.001",
        "attack.t1204",
        "attack.g0032",
        "cve.2021-44228",
    )
    assert ir.source is not None and (ir.source.file, ir.source.line) == ("r.yml", 1)
