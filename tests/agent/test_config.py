"""The agent config: defaults, merge order, validation messages, generated reference."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from vigil.agent.config import AgentConfig, ConfigError
from vigil.agent.config_docs import render_default_toml, render_reference, render_toml
from vigil.agent.config_loader import load_config, parse_duration

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_defaults_follow_whids() -> None:
    config = load_config(env={})
    assert config.criticality_threshold == 5
    assert config.log_all is False
    assert config.en_filters is True
    assert config.actions.low == ()
    assert config.actions.medium == ("brief", "filedump")
    assert config.actions.high == ("report", "filedump")
    assert config.actions.critical == ("report", "filedump", "memdump")
    assert config.actions.max_per_process == 4
    assert config.dump.dir == "/var/lib/vigil/dumps"
    assert config.output.dir == "/var/lib/vigil/logs"
    assert config.output.rotate_interval == 5 * 3600
    assert config.standalone


def test_default_actions_cover_each_band() -> None:
    actions = AgentConfig().default_actions()
    assert sorted(actions) == list(range(1, 11))
    assert actions[4] == []
    assert actions[5] == actions[7] == ["brief", "filedump"]
    assert actions[8] == actions[9] == ["report", "filedump"]
    assert actions[10] == ["report", "filedump", "memdump"]


def test_default_toml_parses_back_to_the_defaults(tmp_path: Path) -> None:
    text = render_default_toml()
    assert "criticality_threshold = 5" in text
    assert "[[canaries.groups]]" in text
    assert load_config(write(tmp_path, text), env={}) == load_config(env={})


def test_generated_reference_is_up_to_date() -> None:
    on_disk = (REPO / "docs" / "agent-config.md").read_text()
    assert on_disk == render_reference(), (
        "regenerate: python -m vigil.agent.config_docs > docs/agent-config.md"
    )


def test_reference_documents_every_key() -> None:
    doc = render_reference()
    for key in (
        "data_dir",
        "criticality_threshold",
        "actions.critical",
        "spool.max_mb",
        "manager.fingerprint",
    ):
        assert f"| `{key}` |" in doc


def test_merge_order_file_then_env_then_cli(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'data_dir = "{tmp_path}"\ncriticality_threshold = 3\nlog_all = true\n[spool]\nmax_mb = 10\n',
    )
    env = {"VIGIL_AGENT_SPOOL__MAX_MB": "20", "VIGIL_AGENT_CRITICALITY_THRESHOLD": "4", "HOME": "/x"}
    config = load_config(path, env=env, overrides=["criticality_threshold=7"])
    assert config.data_dir == str(tmp_path)
    assert config.log_all is True  # file
    assert config.spool.max_mb == 20  # environment beats file
    assert config.criticality_threshold == 7  # command line beats environment
    assert config.spool.dir == str(tmp_path / "spool")


def test_lists_and_durations_from_text() -> None:
    config = load_config(
        env={"VIGIL_AGENT_ACTIONS__LOW": "kill, memdump", "VIGIL_AGENT_OUTPUT__ROTATE_INTERVAL": "1h30m"},
        overrides=['sensors.watch_paths=["/tmp/a", "/tmp/b"]', "stats_interval=500ms"],
    )
    assert config.actions.low == ("kill", "memdump")
    assert config.output.rotate_interval == 5400.0
    assert config.sensors.watch_paths == ("/tmp/a", "/tmp/b")
    assert config.stats_interval == 0.5


def test_relative_paths_in_file_are_relative_to_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, f'data_dir = "{tmp_path}"\n[sensors]\nreplay = "events.jsonl"\n')
    assert load_config(path, env={}).sensors.replay == str(tmp_path / "events.jsonl")


def test_canary_groups_tables(tmp_path: Path) -> None:
    path = write(tmp_path, '[[canaries.groups]]\ndirectories = ["/srv/decoy"]\nfiles = ["a.txt"]\n')
    groups = load_config(path, env={}).canaries.groups
    assert len(groups) == 1
    assert groups[0].directories == ("/srv/decoy",)
    assert groups[0].delete is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[actions]\ncritical = ["report", "nuke"]\n', "actions.critical: unknown action 'nuke'"),
        ("[spool]\nmax_mb = -3\n", "spool.max_mb: expected a positive integer, got -3"),
        ('[spool]\nmax_mb = "big"\n', "spool.max_mb: expected an integer, got 'big'"),
        (
            "criticality_threshold = 11\n",
            "criticality_threshold: expected a criticality between 0 and 10, got 11",
        ),
        ('log_level = "loud"\n', "log_level: expected one of debug, info, warning, error, got 'loud'"),
        ("log_all = 1\n", "log_all: expected a boolean, got 1"),
        ("[sensors]\nwatch_paths = [1]\n", "sensors.watch_paths: expected a list of strings, got [1]"),
        ('[output]\nrotate_interval = "soon"\n', "output.rotate_interval: expected a duration"),
        ("[sensors]\nreplays = 'x'\n", "sensors.replays: unknown key (did you mean 'replay'?)"),
        (
            "criticality_treshold = 5\n",
            "criticality_treshold: unknown key (did you mean 'criticality_threshold'?)",
        ),
        ('[manager]\nurl = "ftp://x"\n', "manager.url: expected an http:// or https:// URL, got 'ftp://x'"),
        ('[manager]\nuuid = "not-a-uuid"\n', "manager.uuid: expected a UUID"),
        ('[manager]\nurl = "https://m:1519"\n', "manager.uuid: required when manager.url is set"),
        ('[manager]\nfingerprint = "abc"\n', "manager.fingerprint: expected a hex SHA-256 fingerprint"),
        ('data_dir = "relative"\n', "data_dir: expected an absolute path, got 'relative'"),
        ("[[canaries.groups]]\nfiles = 3\n", "canaries.groups[0].files: expected a list of strings, got 3"),
        ("[[canaries.groups]]\nfile = []\n", "canaries.groups[0].file: unknown key (did you mean 'files'?)"),
        ("spool = 3\n", "spool: expected a table [spool], got 3"),
    ],
)
def test_invalid_file_names_key_and_value(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value).startswith(message)
    assert str(path) in str(info.value) or info.value.key.startswith("manager.")


def test_error_carries_structured_fields(tmp_path: Path) -> None:
    path = write(tmp_path, '[actions]\ncritical = ["nuke"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert (info.value.key, info.value.value, info.value.origin) == ("actions.critical", "nuke", str(path))


def test_invalid_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={"VIGIL_AGENT_SPOOL__MAX_MB": "-3"})
    assert str(info.value) == (
        "spool.max_mb: expected a positive integer, got -3 (environment VIGIL_AGENT_SPOOL__MAX_MB)"
    )
    with pytest.raises(ConfigError, match=r"spool\.maxmb: unknown key"):
        load_config(env={"VIGIL_AGENT_SPOOL__MAXMB": "3"})


def test_invalid_command_line_override() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={}, overrides=["actions.low=kill,nuke"])
    assert str(info.value).startswith("actions.low: unknown action 'nuke'")
    assert info.value.origin == "command line"
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(env={}, overrides=["log_all"])


def test_plugin_actions_are_accepted_when_known() -> None:
    config = load_config(env={}, overrides=["actions.low=quarantine"], known_actions=["quarantine"])
    assert config.actions.low == ("quarantine",)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "data_dir = \n"), env={})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.toml", env={})


def test_parse_duration() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("5h") == 18000
    assert parse_duration("1m30s") == 90
    with pytest.raises(ValueError):
        parse_duration("5 parsecs")
    with pytest.raises(ValueError):
        parse_duration("")


def test_default_toml_is_valid_toml() -> None:
    data = tomllib.loads(render_default_toml())
    assert data["actions"]["critical"] == ["report", "filedump", "memdump"]


def test_effective_config_renders_back_to_itself(tmp_path: Path) -> None:

    path = write(
        tmp_path,
        f'data_dir = "{tmp_path}"\nlog_all = true\n[actions]\nlow = ["kill"]\n'
        '[[canaries.groups]]\ndirectories = ["/srv/a"]\nfiles = ["x.txt"]\ndelete = false\n'
        '[output]\nrotate_interval = "2h"\n',
    )
    config = load_config(path, env={})
    again = load_config(write(tmp_path, render_toml(config)), env={})
    assert again == config
    no_groups = load_config(write(tmp_path, "[canaries]\ngroups = []\n"), env={})
    assert no_groups.canaries.groups == ()
    assert load_config(write(tmp_path, render_toml(no_groups)), env={}) == no_groups
