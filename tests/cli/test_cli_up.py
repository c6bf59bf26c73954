"""``vigil up``'s banner: what it promises, and what it says when the agent cannot see everything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vigil.cli import up as cli_up
from vigil.up import LocalDeployment


def _banner(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], euid: int, key: str | None
) -> str:
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    deployment = LocalDeployment(Path("/srv/vigil-test"), admin_port=41520, endpoint_port=41519)
    cli_up._banner(deployment, key, "ab" * 32)
    return capsys.readouterr().out


def test_first_run_banner_as_root(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _banner(monkeypatch, capsys, 0, "k" * 64)
    assert "console:       https://127.0.0.1:41520/ui/" in out
    assert f"admin key (shown once, keep it): {'k' * 64}" in out
    assert "fingerprint (sha256): " + "ab" * 32 in out
    assert "running as root with the kernel sensors" in out
    assert "stop:          Ctrl-C" in out


def test_banner_as_non_root_says_what_the_agent_cannot_see(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _banner(monkeypatch, capsys, 1000, None)
    assert "NOT root" in out
    for missing in ("audit", "fanotify", "network", "DNS", "exec blocking"):
        assert missing in out
    assert "vigil agent doctor" in out
    assert "admin key: shown at the first run" in out
    assert "vigil manager user add NAME --data /srv/vigil-test/manager" in out


def test_banner_names_the_vigil_that_can_be_typed_here(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    script = Path(sys.executable).parent / "vigil"
    assert script.exists(), "the tests run from an installed environment (make test's .venv)"
    monkeypatch.setenv("PATH", "/nonexistent")  # as after `make run`: .venv/bin is not on PATH
    monkeypatch.chdir(script.parent.parent.parent)
    out = _banner(monkeypatch, capsys, 0, None)
    typed = f"{script.parent.parent.name}/bin/vigil"  # e.g. .venv/bin/vigil
    assert f"try it:        {typed} simulate" in out
    assert f"see `{typed} agent doctor`" in out
