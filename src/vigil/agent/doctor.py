"""`vigil agent doctor`: what each source, hook, action and output needs, and whether this host has it.

Every finding comes from the extension's own ``requirements(config)`` (no side effects), so what the
doctor says is what the agent would find at start. ``enabled`` tells whether the current config uses
the extension; the exit status is 1 when an enabled one is unavailable or a plug-in failed to load.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from vigil.agent.config import AgentConfig
from vigil.agent.config_loader import exposed_secrets
from vigil.agent.registry import Extension, Registry

__all__ = ["Finding", "diagnose", "exit_status", "render"]


@dataclass
class Finding:
    kind: str
    name: str
    enabled: bool
    available: bool
    reasons: list[str] = field(default_factory=list)
    help: str = ""
    plugin: str = "builtin"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _default_kernel_sources() -> list[str]:
    try:
        from vigil.agent.sources.registry import DEFAULT_SOURCES
    except ImportError:
        return ["kernel"]
    return list(DEFAULT_SOURCES)


def _enabled(ext: Extension, config: AgentConfig) -> bool:
    wanted = set(config.sensors.sources)
    if ext.kind == "source":
        if ext.name == "replay":
            return bool(config.sensors.replay)
        if ext.emits == "events":
            return ext.name in wanted
        if not config.sensors.kernel:
            return False
        if ext.plugin != "builtin":
            return ext.name in wanted
        return ext.name in (wanted or set(_default_kernel_sources()))
    if ext.kind == "action":
        a = config.actions
        used = set(a.low) | set(a.medium) | set(a.high) | set(a.critical)
        if config.canaries.enable:
            used |= set(config.canaries.actions)
        if ext.name in ("report", "brief") and not config.reporting.enable:
            return False  # listed by the bands but switched off, as in WHIDS
        return config.endpoint and ext.name in used
    if ext.kind == "output":
        return ext.name == ("jsonl" if config.standalone else "manager")
    if ext.kind == "hook":
        return ext.name in config.pipeline.hooks
    return False


def diagnose(config: AgentConfig, registry: Registry, *, config_path: str | None = None) -> list[Finding]:
    findings: list[Finding] = []
    if config_path is not None:
        leak = exposed_secrets(config_path, config)
        findings.append(Finding("config", config_path, True, leak is None, [leak] if leak else []))
    for ext in registry.extensions.values():
        try:
            reasons = list(ext.requirements(config))
        except Exception as e:  # a broken plug-in must not hide the others
            reasons = [f"requirements() failed: {type(e).__name__}: {e}"]
        findings.append(
            Finding(ext.kind, ext.name, _enabled(ext, config), not reasons, reasons, ext.help, ext.plugin)
        )
    for message in registry.errors:
        findings.append(Finding("plugin", "load", True, False, [message]))
    findings.append(_rules_finding(config))
    return findings


def _rules_finding(config: AgentConfig) -> Finding:
    rules_dir = config.rules.dir
    if not os.path.isdir(rules_dir):
        return Finding(
            "rules", rules_dir, True, False, ["the rules directory does not exist (created at start)"]
        )
    try:
        from vigil.engine import check_path  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return Finding("rules", rules_dir, True, False, ["the rule engine is not part of this build"])
    errors = check_path(rules_dir)
    if errors:
        return Finding("rules", rules_dir, True, False, [str(e) for e in errors])
    if not os.listdir(rules_dir):
        return Finding("rules", rules_dir, True, False, ["no rules: nothing will be detected"])
    return Finding("rules", rules_dir, True, True)


def exit_status(findings: list[Finding]) -> int:
    return 1 if any(f.enabled and not f.available for f in findings) else 0


def render(findings: list[Finding]) -> str:
    order = {"config": -1, "source": 0, "hook": 1, "action": 2, "output": 3, "rules": 4, "plugin": 5}
    width = max((len(f.name) for f in findings), default=4)
    lines = []
    for f in sorted(findings, key=lambda f: order.get(f.kind, 9)):
        state = "available" if f.available else "UNAVAILABLE"
        use = "enabled " if f.enabled else "disabled"
        line = f"{f.kind:<7} {f.name:<{width}}  {use}  {state}"
        if f.reasons:
            line += ": " + "; ".join(f.reasons)
        if f.plugin != "builtin":
            line += f"  [{f.plugin}]"
        lines.append(line)
    return "\n".join(lines) + "\n"
