"""Live: the agent's real kernel sensor sees every simulation, and the default rules fire on what it
saw (only events that name a simulation path or name are counted, so other activity on the host
cannot make the test pass)."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import pytest

from vigil.agent.sensor import Sensor
from vigil.engine import Engine
from vigil.rules import default_rules_path, default_watch_paths
from vigil.simulate import SCENARIOS, run_scenario

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the kernel sensor needs root (CI runs as root)"),
]


def test_simulations_fire_their_rules_through_the_real_sensor() -> None:
    events: list[dict[str, Any]] = []
    lock = threading.Lock()

    def sink(event: dict[str, Any]) -> None:
        with lock:
            events.append(event)

    # The watch paths `vigil up` gives the agent; report this process's children too.
    sensor = Sensor(watch_paths=default_watch_paths(), exclude_pids=set())
    sensor.start(sink)
    try:
        time.sleep(1.0)
        results = [run_scenario(sc) for sc in SCENARIOS.values()]
        time.sleep(3.0)
    finally:
        sensor.stop()

    engine = Engine()
    engine.load_path(default_rules_path())
    fired: set[str] = set()
    with lock:
        ours = [e for e in events if "vigil-sim" in json.dumps(e["Event"]["EventData"])]
    for event in ours:
        fired.update(engine.match(event).signature)
    missing = {r.name: sorted(set(r.exercised_rules) - fired) for r in results}
    assert all(r.status == "ran" for r in results), [(r.name, r.message) for r in results]
    assert not {k: v for k, v in missing.items() if v}
