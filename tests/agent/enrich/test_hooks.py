"""Enrichment hooks: registration in one place, (channel, EventID) filters, order, failures."""

from __future__ import annotations

import logging

import pytest

from vigil.agent.enrich import HookContext, HookRegistry, default_hooks
from vigil.agent.sysmon import SYSMON_CHANNEL, VIGIL_CHANNEL, EventFactory
from vigil.agent.tracker import ProcessTracker


def _ctx() -> HookContext:
    return HookContext(ProcessTracker(hash_images=False), None, {}, 0)


def test_default_hooks_are_whids_order() -> None:
    assert default_hooks().names() == ["track", "image_size", "stats", "enrich_any"]


def test_hooks_run_in_order_and_only_on_their_events() -> None:
    reg = HookRegistry()
    seen: list[str] = []

    @reg.register("first", SYSMON_CHANNEL, [1])
    def first(data: dict[str, str], ctx: HookContext) -> None:
        seen.append("first")
        data["A"] = "1"

    @reg.register("second", SYSMON_CHANNEL)
    def second(data: dict[str, str], ctx: HookContext) -> None:
        seen.append("second")
        data["B"] = data.get("A", "none")

    f = EventFactory("h")
    e1 = f.sysmon(1, {}, pid=1)
    reg.run(e1, _ctx())
    assert seen == ["first", "second"] and e1["Event"]["EventData"]["B"] == "1"
    seen.clear()
    e3 = f.sysmon(3, {}, pid=1)
    reg.run(e3, _ctx())
    assert seen == ["second"] and e3["Event"]["EventData"]["B"] == "none"
    seen.clear()
    reg.run(f.vigil(102, {}, pid=1), _ctx())
    assert seen == []
    assert VIGIL_CHANNEL != SYSMON_CHANNEL


def test_duplicate_hook_name_is_refused() -> None:
    reg = default_hooks()
    with pytest.raises(ValueError, match="'track' is already registered"):
        reg.register("track", SYSMON_CHANNEL)(lambda d, c: None)


def test_a_failing_hook_is_counted_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    reg = HookRegistry()

    @reg.register("boom", SYSMON_CHANNEL)
    def boom(data: dict[str, str], ctx: HookContext) -> None:
        raise KeyError("missing")

    @reg.register("after", SYSMON_CHANNEL)
    def after(data: dict[str, str], ctx: HookContext) -> None:
        data["After"] = "yes"

    e = EventFactory("h").sysmon(5, {}, pid=1)
    with caplog.at_level(logging.ERROR):
        reg.run(e, _ctx())
    assert e["Event"]["EventData"]["After"] == "yes"
    assert reg.errors == 1
    assert "enrichment hook boom failed on Linux-Sysmon/Operational/5" in caplog.text


def test_enrich_any_marks_unknown_processes() -> None:
    reg = default_hooks()
    e = EventFactory("h").sysmon(3, {"ProcessId": "-"}, pid=1)
    reg.run(e, _ctx())
    d = e["Event"]["EventData"]
    assert (d["CommandLine"], d["ImageHashes"], d["ProcessThreatScore"]) == ("?", "?", "-1")
