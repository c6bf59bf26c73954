from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from vigil.manager.config import ManagerConfig
from vigil.manager.errors import BadRequest


def test_every_setting_is_documented() -> None:
    text = Path("docs/manager.md").read_text()
    defaults = ManagerConfig(data_dir=Path("x"))
    for f in dataclasses.fields(ManagerConfig):
        if f.name != "data_dir":
            assert f"| `{f.name}` | `{getattr(defaults, f.name)!r}` | {f.metadata['help']} |" in text


def test_round_trip_and_overrides(tmp_path: Path) -> None:
    config = ManagerConfig(data_dir=tmp_path, admin_port=9, server_key='a "quoted" key', tls=False)
    (tmp_path / "manager.toml").write_text(config.to_toml())
    loaded = ManagerConfig.load(tmp_path)
    assert loaded == config
    assert loaded.replace(admin_port=None, endpoint_port=7).endpoint_port == 7
    assert loaded.replace(admin_port=None).admin_port == 9


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("admin_port = 'x'", "admin_port must be int"),
        ("tls = 1", "tls must be bool"),
        ("nope = 1", "unknown"),
        ("admin_port = ", "manager.toml"),
    ],
)
def test_bad_files_name_the_setting(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "manager.toml").write_text(text + "\n")
    with pytest.raises(BadRequest) as err:
        ManagerConfig.load(tmp_path)
    assert needle in err.value.message
