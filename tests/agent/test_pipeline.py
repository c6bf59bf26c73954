"""The pipeline: WHIDS §4.3 detection semantics, self exclusion, bounded queue, drain, counters, outputs."""

from __future__ import annotations

import json
import logging
import re
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from tests.agent.fakes import MemoryOutput, RecordingRunner, engine_with, proc_event
from vigil.agent.config import AgentConfig
from vigil.agent.detection import Detector
from vigil.agent.pipeline import Pipeline, SelfFilter

DEFAULTS = AgentConfig().default_actions()

RULES = [
    {
        "Name": "CurlRun",
        "Meta": {"Events": {"Linux-Sysmon/Operational": [1]}, "Criticality": 5, "Schema": "2.0.0"},
        "Matches": ["$im: Image = '/usr/bin/curl'"],
        "Condition": "$im",
        "Actions": ["kill"],
    },
    {
        "Name": "LowNoise",
        "Meta": {"Criticality": 4, "Schema": "2.0.0"},
        "Matches": ["$im: Image = '/usr/bin/id'"],
        "Condition": "$im",
    },
    {
        "Name": "ShellFromWeb",
        "Meta": {"Criticality": 6, "Schema": "2.0.0"},
        "Matches": ["$im: Image = '/bin/sh'", "$u: User = 'www-data'"],
        "Condition": "$im and $u",
    },
    {
        "Name": "ShellAny",
        "Meta": {"Criticality": 7, "Schema": "2.0.0"},
        "Matches": ["$im: Image = '/bin/sh'"],
        "Condition": "$im",
    },
    {
        "Name": "KeepSsh",
        "Meta": {"Filter": True, "Schema": "2.0.0"},
        "Matches": ["$im: Image = '/usr/sbin/sshd'"],
        "Condition": "$im",
    },
]


def run(events: list[dict[str, Any]], **detector_args: Any) -> tuple[MemoryOutput, RecordingRunner, Pipeline]:
    out, runner = MemoryOutput(), RecordingRunner()
    detector = Detector(engine_with(RULES), **detector_args)
    pipe = Pipeline(detector, [out], actions=runner, is_self=SelfFilter(pid=999_999))
    pipe.start()
    for e in events:
        pipe.submit(e)
    assert pipe.stop(timeout=10)
    return out, runner, pipe


def test_alert_at_threshold_carries_detection_and_actions() -> None:
    out, runner, _ = run([proc_event(10, "/usr/bin/curl")])
    [(event, alert)] = out.events
    assert alert is True
    assert event["Event"]["Detection"] == {
        "Signature": ["CurlRun"],
        "Criticality": 5,
        "Actions": ["kill", "brief", "filedump"],  # rule actions, then the medium band defaults
    }
    [(actions, acted_on, _)] = runner.calls
    assert actions == ["kill", "brief", "filedump"]
    assert acted_on is event


def test_below_threshold_is_neither_reported_nor_acted_on() -> None:
    out, runner, pipe = run([proc_event(10, "/usr/bin/id")])
    assert out.events == []
    assert runner.calls == []
    assert pipe.detect.received == 1
    assert pipe.detect.emitted == 0


def test_lower_threshold_makes_it_an_alert_with_low_band_defaults() -> None:
    out, runner, _ = run([proc_event(10, "/usr/bin/id")], threshold=4)
    [(event, alert)] = out.events
    assert alert
    assert event["Event"]["Detection"] == {"Signature": ["LowNoise"], "Criticality": 4}
    assert runner.calls == []  # low band has no default actions and the rule none


def test_criticality_is_summed_and_capped_with_band_defaults() -> None:
    event = proc_event(10, "/bin/sh", User="www-data")
    out, runner, _ = run([event])
    detection = out.events[0][0]["Event"]["Detection"]
    assert detection["Signature"] == ["ShellFromWeb", "ShellAny"]
    assert detection["Criticality"] == 10  # min(10, 6 + 7)
    assert detection["Actions"] == ["report", "filedump", "memdump"]  # critical band
    assert runner.calls[0][0] == ["report", "filedump", "memdump"]


def test_filter_match_is_reported_without_detection() -> None:
    out, runner, _ = run([proc_event(10, "/usr/sbin/sshd")])
    [(event, alert)] = out.events
    assert alert is False
    assert "Detection" not in event["Event"]
    assert runner.calls == []


def test_filter_match_dropped_when_filters_disabled() -> None:
    out, _, _ = run([proc_event(10, "/usr/sbin/sshd")], en_filters=False)
    assert out.events == []


def test_log_all_reports_every_event_and_flags_only_alerts() -> None:
    events = [proc_event(10, "/usr/bin/curl"), proc_event(11, "/usr/bin/id"), proc_event(12, "/usr/bin/ls")]
    out, runner, _ = run(events, log_all=True)
    assert [(e["Event"]["EventData"]["Image"], alert) for e, alert in out.events] == [
        ("/usr/bin/curl", True),
        ("/usr/bin/id", False),
        ("/usr/bin/ls", False),
    ]
    # below-threshold detection is attached (as WHIDS) but not acted on
    assert out.events[1][0]["Event"]["Detection"]["Criticality"] == 4
    assert len(runner.calls) == 1


def test_no_actions_when_not_an_endpoint() -> None:
    out, runner, _ = run([proc_event(10, "/usr/bin/curl")], endpoint=False)
    assert out.events[0][1] is True
    assert runner.calls == []


def test_agent_and_its_descendants_are_never_detected_or_acted_on() -> None:
    own = 999_999
    events = [
        proc_event(own, "/usr/bin/curl", ppid=1),  # the agent itself (whatever its image)
        proc_event(500, "/usr/bin/curl", ppid=own),  # its child
        proc_event(501, "/usr/bin/curl", ppid=500),  # its grandchild
        proc_event(501, "/usr/bin/curl", eid=5),  # grandchild exits...
        proc_event(501, "/usr/bin/curl", ppid=42),  # ...and its pid is reused by someone else
    ]
    out, runner, pipe = run(events)
    assert [e["Event"]["EventData"]["ProcessId"] for e, _ in out.events] == ["501"]
    assert out.events[0][0]["Event"]["EventData"]["ParentProcessId"] == "42"
    assert len(runner.calls) == 1
    assert pipe.detect.dropped == 4


class Tracker:
    def __init__(self) -> None:
        self.by_guid = {"{guid-77}": {"pid": 77, "guid": "{guid-77}"}}
        self.by_pid = {78: {"pid": 78}, 81: SimpleNamespace(pid=81, guid="{guid-81-new}")}
        self.scores: list[tuple[str, list[str], int]] = []

    def get_by_guid(self, guid: str) -> Any:
        return self.by_guid.get(guid)

    def resolve(self, pid: int) -> Any:
        return self.by_pid.get(pid)

    def add_detection(self, guid: str, signatures: list[str], criticality: int) -> None:
        self.scores.append((guid, signatures, criticality))


def test_tracker_process_is_handed_to_actions_and_scored() -> None:
    runner, tracker = RecordingRunner(), Tracker()
    pipe = Pipeline(
        Detector(engine_with(RULES)),
        [],
        actions=runner,
        tracker=tracker,
        is_self=lambda e: False,
    )
    pipe.start()
    pipe.submit(proc_event(77, "/usr/bin/curl", ProcessGuid="{guid-77}"))  # by guid (the pid is reused)
    pipe.submit(proc_event(78, "/usr/bin/curl"))  # no guid: by pid
    pipe.submit(proc_event(79, "/usr/bin/curl"))  # unknown
    pipe.submit(proc_event(80, "/usr/bin/id", ProcessGuid="{guid-80}"))  # below threshold: not scored
    pipe.submit(proc_event(81, "/usr/bin/curl", ProcessGuid="{guid-81-old}"))  # pid 81 reused: not that one
    assert pipe.stop()
    assert [c[2] for c in runner.calls] == [{"pid": 77, "guid": "{guid-77}"}, {"pid": 78}, None, None]
    assert tracker.scores == [("{guid-77}", ["CurlRun"], 5), ("{guid-81-old}", ["CurlRun"], 5)]


def test_hooks_enrich_drop_and_survive_errors() -> None:
    def tag(event: dict[str, Any]) -> dict[str, Any]:
        event["Event"]["EventData"]["Tagged"] = "yes"
        return event

    def skip_ls(event: dict[str, Any]) -> dict[str, Any] | None:
        return None if event["Event"]["EventData"]["Image"] == "/usr/bin/ls" else event

    def broken(event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("hook bug")

    out = MemoryOutput()
    detector = Detector(engine_with(RULES), log_all=True)
    pipe = Pipeline(detector, [out], hooks=[broken, tag, skip_ls], is_self=lambda e: False)
    pipe.start()
    pipe.submit(proc_event(1, "/usr/bin/ls"))
    pipe.submit(proc_event(2, "/usr/bin/curl"))
    assert pipe.stop()
    assert [e["Event"]["EventData"]["Image"] for e, _ in out.events] == ["/usr/bin/curl"]
    assert out.events[0][0]["Event"]["EventData"]["Tagged"] == "yes"
    assert (pipe.hook_stage.received, pipe.hook_stage.emitted, pipe.hook_stage.dropped) == (2, 1, 1)


class BlockingOutput(MemoryOutput):
    name = "blocking"

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def write(self, event: dict[str, Any], *, alert: bool) -> None:
        self.gate.wait(10)
        super().write(event, alert=alert)


def test_full_queue_drops_and_counts_without_blocking_sources() -> None:
    out = BlockingOutput()
    pipe = Pipeline(
        Detector(engine_with([]), log_all=True),
        [out],
        is_self=lambda e: False,
        queue_size=4,
        batch_size=1,
    )
    pipe.start()
    for i in range(50):
        pipe.submit(proc_event(i, "/x"))
    assert pipe.intake.received == 50
    assert pipe.intake.dropped > 0
    assert pipe.intake.emitted + pipe.intake.dropped == 50
    out.gate.set()
    assert pipe.stop(timeout=10)
    assert len(out.events) == pipe.intake.emitted  # everything accepted went through
    pipe.submit(proc_event(99, "/x"))  # after stop: refused and counted
    assert pipe.intake.dropped == 50 - len(out.events) + 1


def test_drain_deadline_counts_what_was_left() -> None:
    out = BlockingOutput()
    pipe = Pipeline(Detector(engine_with([]), log_all=True), [out], is_self=lambda e: False, batch_size=1)
    pipe.start()
    for i in range(5):
        pipe.submit(proc_event(i, "/x"))
    threading.Timer(0.5, out.gate.set).start()
    assert pipe.stop(timeout=0.1) is False
    assert pipe.intake.emitted == 5
    assert pipe.total.dropped + len(out.events) == 5
    assert pipe.total.dropped >= 1
    assert out.closed


def test_counters_are_logged_periodically(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vigil.agent.pipeline")
    out = MemoryOutput()
    pipe = Pipeline(Detector(engine_with(RULES)), [out], is_self=lambda e: False, stats_interval=0.05)
    pipe.start()
    pipe.submit(proc_event(1, "/usr/bin/curl"))
    pipe.submit(proc_event(2, "/usr/bin/ls"))
    threading.Event().wait(0.5)
    assert pipe.stop()
    records = [r for r in caplog.records if r.getMessage().startswith(("stats ", "final stats "))]
    assert len(records) >= 2
    periodic = next(
        r
        for r in records
        if r.getMessage().startswith("stats ") and r.stats["stages"]["pipeline"]["latency"]["count"]  # type: ignore[attr-defined]
    )
    stages = periodic.stats["stages"]  # type: ignore[attr-defined]
    assert stages["intake"]["received"] == 2
    assert stages["detect"]["received"] == 2
    assert stages["detect"]["emitted"] == 1
    assert stages["output.memory"]["emitted"] == 1
    assert stages["pipeline"]["latency"]["count"] == 2
    assert stages["pipeline"]["latency"]["max_ms"] > 0
    # the log line is the same object as JSON, for machines
    assert json.loads(periodic.getMessage().split(" ", 1)[1])["stages"]["intake"]["received"] == 2


def test_replayed_events_are_reported_but_never_acted_on() -> None:
    out, runner = MemoryOutput(), RecordingRunner()
    pipe = Pipeline(Detector(engine_with(RULES)), [out], actions=runner, is_self=lambda e: False)
    pipe.start()
    pipe.submit(proc_event(10, "/usr/bin/curl"), act=False)
    assert pipe.stop()
    assert out.events[0][1] is True
    assert out.events[0][0]["Event"]["Detection"]["Actions"] == ["kill", "brief", "filedump"]
    assert runner.calls == []


def test_a_half_full_queue_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    out = BlockingOutput()
    pipe = Pipeline(
        Detector(engine_with([]), log_all=True), [out], is_self=lambda e: False, queue_size=8, batch_size=1
    )
    pipe.start()
    for i in range(9):
        pipe.submit(proc_event(i, "/x"))
    pipe.log_stats()
    assert re.search(r"pipeline falling behind: [78] events queued of 8 \(pipeline.queue_size\)", caplog.text)
    out.gate.set()
    assert pipe.stop()


def test_inline_pipeline_handles_each_event_in_the_submitting_thread_and_flushes_alerts_at_once() -> None:
    out, runner = MemoryOutput(), RecordingRunner()
    pipe = Pipeline(
        Detector(engine_with(RULES), log_all=True),
        [out],
        actions=runner,
        is_self=SelfFilter(pid=999_999),
        inline=True,
    )
    pipe.start()
    seen_in: list[str] = []

    def spy(event: dict[str, Any]) -> dict[str, Any]:
        seen_in.append(threading.current_thread().name)
        return event

    pipe.hooks = [spy]
    submitter = threading.Thread(
        target=pipe.submit, args=(proc_event(10, "/usr/bin/curl"),), name="submitter"
    )
    submitter.start()
    submitter.join()
    # done before submit() returned: written, acted on and flushed (an alert), in the caller's thread
    assert seen_in == ["submitter"]
    assert [alert for _, alert in out.events] == [True]
    assert out.flushes == 1
    assert len(runner.calls) == 1
    pipe.submit(proc_event(11, "/usr/bin/ls"))  # not an alert: written now, flushed by the tick
    assert [alert for _, alert in out.events] == [True, False]
    assert out.flushes == 1
    assert pipe.stop(timeout=10)
    assert out.closed
    assert pipe.total.received == 2
