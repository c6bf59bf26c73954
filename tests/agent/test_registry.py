"""The extension registry: one place for sources, hooks, actions and outputs, built-ins included."""

from __future__ import annotations

import pytest

from vigil.agent.config import ACTION_NAMES, AgentConfig
from vigil.agent.registry import KINDS, Registry, default_registry, register_builtins


def test_builtins_are_registered_like_plugins() -> None:
    registry = Registry()
    register_builtins(registry)
    assert set(registry.names("action")) == set(ACTION_NAMES)
    assert registry.names("output") == ["jsonl", "manager"]
    assert registry.get("source", "replay").emits == "events"
    assert registry.get("source", "replay").live is False
    assert all(e.plugin == "builtin" for e in registry.extensions.values())
    assert {e.kind for e in registry.extensions.values()} <= set(KINDS)


def test_names_are_unique_per_kind_and_kinds_are_checked() -> None:
    registry = default_registry(plugins=False)
    with pytest.raises(ValueError, match="action 'kill' is already registered by builtin"):
        registry.add("action", "kill")
    registry.add("hook", "kill", lambda c: lambda e: e)  # another kind may reuse the name
    with pytest.raises(ValueError, match="unknown extension kind 'sink'"):
        registry.add("sink", "x")
    with pytest.raises(ValueError, match="emits must be 'events' or 'records', got ''"):
        registry.add("source", "x")


def test_unknown_name_lists_what_is_known() -> None:
    registry = default_registry(plugins=False)
    with pytest.raises(KeyError, match="no output named 'kafka' \\(known: jsonl, manager\\)"):
        registry.get("output", "kafka")


def test_jsonl_output_factory_follows_the_config(tmp_path: object) -> None:
    config = AgentConfig(data_dir=str(tmp_path)).resolved()
    ext = default_registry(plugins=False).get("output", "jsonl")
    assert ext.requirements(config) == []
    assert ext.factory is not None
    output = ext.factory(config)
    assert output.directory == config.output.dir
    assert output.alerts.max_bytes == 100 << 20
    output.close()
