"""Build Sigma rules and events inline for the semantics tests (tests only)."""

from __future__ import annotations

import textwrap
from typing import Any

from tests.engine.sigma.matching import matches
from vigil.engine.ir import RuleIR
from vigil.engine.sigma import CompileOptions, load_sigma_text

PROCESS_CREATION = "product: windows\n    category: process_creation"


def compile_one(
    detection: str, logsource: str = PROCESS_CREATION, opts: CompileOptions | None = None
) -> RuleIR:
    """Compile a rule with the given (indented by 4) detection block; fail on any rejection."""
    text = (
        "title: Test rule\nid: 5f0c3cb8-7c3c-4a53-9c1f-000000000001\nstatus: test\nlevel: high\n"
        f"logsource:\n    {logsource}\ndetection:\n"
        + textwrap.indent(textwrap.dedent(detection).strip("\n"), "    ")
    )
    result = load_sigma_text(text, "test.yml", opts)
    assert not result.rejections, [str(r) for r in result.rejections]
    (rule,) = result.rules
    return rule.ir


def sysmon_event(eid: int = 1, **data: Any) -> dict[str, Any]:
    return {
        "Event": {
            "System": {
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "EventID": str(eid),
                "Computer": "host",
            },
            "EventData": data,
        }
    }


def fires(rule: RuleIR, **data: Any) -> bool:
    return matches(rule, sysmon_event(**data))
