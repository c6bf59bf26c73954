"""Detection helpers: IoC containers on disk and the engine the agent builds from its config."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tests.agent.fakes import proc_event
from vigil.agent.config_loader import load_config
from vigil.agent.detection import Detector, build_engine, load_containers


def test_containers_are_read_plain_and_gzipped(tmp_path: Path) -> None:
    (tmp_path / "bad_domains.cont").write_text("Evil.example\n\nbad.test\n")
    with gzip.open(tmp_path / "edr_iocs.cont.gz", "wt") as f:
        f.write("0123abcd\n")
    (tmp_path / "README").write_text("ignored")
    assert load_containers(str(tmp_path)) == {
        "bad_domains": ["Evil.example", "bad.test"],
        "edr_iocs": ["0123abcd"],
    }
    assert load_containers(str(tmp_path / "missing")) == {}


def test_engine_from_config_uses_containers_rules_and_band_defaults(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "containers").mkdir()
    (tmp_path / "containers" / "bad_tools.cont").write_text("NC\nsocat\n")
    rule = {
        "Name": "BadToolRun",
        "Meta": {"Events": {"Linux-Sysmon/Operational": [1]}, "Criticality": 9, "Schema": "2.0.0"},
        "Matches": ["$tool: extract('(?P<name>[^/]+)$', Image) in bad_tools"],
        "Condition": "$tool",
    }
    (tmp_path / "rules" / "bad.gen").write_text(json.dumps(rule))
    config = load_config(env={}, overrides=[f"data_dir={tmp_path}", "actions.high=kill"])
    detector = Detector.from_config(build_engine(config), config)
    event = proc_event(5, "/usr/bin/nc")
    verdict = detector.inspect(event)
    assert verdict.alert
    assert verdict.actions == ("kill",)
    assert event["Event"]["Detection"] == {"Signature": ["BadToolRun"], "Criticality": 9, "Actions": ["kill"]}
    assert not detector.inspect(proc_event(6, "/usr/bin/ls")).report


def test_builtin_rules_turn_operational_events_into_alerts(tmp_path: Path) -> None:
    config = load_config(
        env={}, overrides=[f"data_dir={tmp_path}", "canaries.enable=true", "canaries.actions=kill"]
    )
    detector = Detector.from_config(build_engine(config), config)
    canary = {
        "Event": {
            "System": {"Channel": "Vigil/Operational", "EventID": 100},
            "EventData": {"TargetFilename": "/srv/readme.txt", "ProcessId": "42", "Image": "/usr/bin/cat"},
        }
    }
    verdict = detector.inspect(canary)
    assert verdict.alert
    assert canary["Event"]["Detection"]["Signature"] == ["Builtin:CanaryAccessed"]
    assert canary["Event"]["Detection"]["Criticality"] == 10
    assert verdict.actions == ("kill", "report", "filedump", "memdump")
    blocked = {
        "Event": {
            "System": {"Channel": "Vigil/Operational", "EventID": 101},
            "EventData": {"TargetFilename": "/tmp/x", "ProcessId": "43"},
        }
    }
    assert detector.inspect(blocked).alert
    assert blocked["Event"]["Detection"]["Signature"] == ["Builtin:BlockedExec"]


def test_response_action_events_are_reported_but_never_alerts(tmp_path: Path) -> None:
    config = load_config(env={}, overrides=[f"data_dir={tmp_path}"])
    detector = Detector.from_config(build_engine(config), config)
    action = {
        "Event": {
            "System": {"Channel": "Vigil/Operational", "EventID": 103},
            "EventData": {"ProcessId": "42", "Action": "kill", "Result": "ok"},
        }
    }
    verdict = detector.inspect(action)
    assert verdict.report
    assert not verdict.alert
    assert verdict.actions == ()
    assert "Detection" not in action["Event"]


def test_freeze_heap_keeps_the_collector_off_loaded_rules_and_frees_replaced_engines() -> None:
    import gc
    import weakref

    from vigil.agent.detection import freeze_heap

    class Node:
        pass

    old = Node()
    old.cycle = old  # type: ignore[attr-defined]
    gone = weakref.ref(old)
    try:
        freeze_heap()
        assert gc.get_freeze_count() > 0
        del old
        gc.collect()
        assert gone() is not None, "a frozen cycle is not collected until the next freeze_heap"
        freeze_heap()  # after an engine swap: unfreeze, collect the replaced one, freeze again
        assert gone() is None
    finally:
        gc.unfreeze()
