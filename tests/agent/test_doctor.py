"""`vigil agent doctor`: findings from each extension's requirements, rendered and as exit status."""

from __future__ import annotations

from pathlib import Path

from vigil.agent.config_loader import load_config
from vigil.agent.doctor import Finding, diagnose, exit_status, render
from vigil.agent.registry import Registry, register_builtins


def test_findings_and_rendering(tmp_path: Path) -> None:
    registry = Registry()
    register_builtins(registry)
    registry.add("output", "broken", None, requirements=lambda c: 1 / 0)  # type: ignore[arg-type,return-value]
    config = load_config(env={}, overrides=[f"data_dir={tmp_path}", "sensors.kernel=false"])
    findings = {(f.kind, f.name): f for f in diagnose(config, registry)}
    assert findings[("source", "replay")] == Finding(
        "source",
        "replay",
        enabled=False,
        available=False,
        reasons=["sensors.replay names no file"],
        help="replay a JSON-lines file of events (sensors.replay)",
    )
    assert findings[("output", "broken")].reasons == [
        "requirements() failed: ZeroDivisionError: division by zero"
    ]
    assert findings[("rules", str(tmp_path / "rules"))].reasons == [
        "the rules directory does not exist (created at start)"
    ]
    text = render(list(findings.values()))
    assert "source  replay" in text
    assert "disabled  UNAVAILABLE: sensors.replay names no file" in text
    assert text.index("source") < text.index("action") < text.index("output") < text.index("rules")


def test_exit_status_counts_only_enabled_findings() -> None:
    off = Finding("source", "a", enabled=False, available=False, reasons=["x"])
    on = Finding("source", "b", enabled=True, available=True)
    assert exit_status([off, on]) == 0
    assert (
        exit_status([off, on, Finding("action", "kill", enabled=True, available=False, reasons=["y"])]) == 1
    )


def test_broken_rules_are_reported_with_location(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "bad.gen").write_text(
        '{"Name": "Bad", "Meta": {"Schema": "2.0.0"}, "Matches": ["$a: Image"]'
    )
    registry = Registry()
    register_builtins(registry)
    config = load_config(env={}, overrides=[f"data_dir={tmp_path}", "sensors.kernel=false"])
    [rules] = [f for f in diagnose(config, registry) if f.kind == "rules"]
    assert not rules.available
    assert str(tmp_path / "rules" / "bad.gen") in rules.reasons[0]


def test_config_file_with_a_key_readable_by_others_is_flagged(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'data_dir = "{tmp_path}"\n[manager]\nurl = "https://m:1519"\n'
        'uuid = "03e31275-2277-d8e0-bb5f-480fac7ee4ef"\nkey = "secret"\n'
    )
    path.chmod(0o644)
    registry = Registry()
    register_builtins(registry)
    config = load_config(path, env={})
    [finding] = [f for f in diagnose(config, registry, config_path=str(path)) if f.kind == "config"]
    assert finding.reasons == [
        f"{path} holds manager.key but is accessible to other users (mode 0644): chmod 600 {path}"
    ]
    path.chmod(0o600)
    [finding] = [f for f in diagnose(config, registry, config_path=str(path)) if f.kind == "config"]
    assert finding.available
