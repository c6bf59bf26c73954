"""``vigil agent enroll`` writes the [manager] section (0600), keeps the rest, refuses bad values."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from vigil.agent.config_loader import load_config
from vigil.agent.enroll import EnrollError, enroll
from vigil.cli import main

UUID = "03e31275-2277-d8e0-bb5f-480fac7ee4ef"
FPR = "AB" * 32


def test_enroll_creates_a_private_config_the_agent_loads(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "agent.toml"
    rc = main(["agent", "enroll", "--config", str(path), "--manager", "https://mgr:1519",
               "--uuid", UUID, "--key", "s3cret", "--fingerprint", FPR])  # fmt: skip
    assert rc == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = load_config(path, env={})
    assert (config.manager.url, config.manager.uuid, config.manager.key) == (
        "https://mgr:1519",
        UUID,
        "s3cret",
    )
    assert config.manager.fingerprint == "ab" * 32
    assert not config.standalone


def test_enroll_updates_and_keeps_other_settings(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('log_all = true\n[manager]\nurl = "https://old:1519"\ntimeout = 7.0\n')
    enroll(path, url="https://new:1519", uuid=UUID, key="k")
    data = tomllib.loads(path.read_text())
    assert data["log_all"] is True
    assert data["manager"] == {"url": "https://new:1519", "uuid": UUID, "key": "k", "timeout": 7.0}


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"url": "ftp://mgr"}, "--manager"),
        ({"url": ""}, "--manager"),
        ({"uuid": "not-a-uuid"}, "--uuid"),
        ({"fingerprint": "1234"}, "--fingerprint"),
        ({"key": "two words"}, "--key"),
    ],
)
def test_bad_values_are_named_and_nothing_is_written(
    tmp_path: Path, kwargs: dict[str, str], names: str
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("log_all = true\n")
    values = {"url": "https://mgr:1519", "uuid": UUID, "key": "k", **kwargs}
    with pytest.raises(EnrollError, match=names):
        enroll(path, **values)
    assert path.read_text() == "log_all = true\n"


def test_unreadable_toml_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("log_all = \n")
    rc = main(
        ["agent", "enroll", "--config", str(path), "--manager", "https://m:1", "--uuid", UUID, "--key", "k"]
    )
    assert rc == 2
    assert "cannot be read as TOML" in capsys.readouterr().err
    assert path.read_text() == "log_all = \n"
