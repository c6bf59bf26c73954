"""The sensor keeps running when a source cannot start, and says why, once."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.agent.sensor_helpers import Collector, needs_root
from vigil.agent.sensor import Sensor
from vigil.agent.sources.base import EventSource, SourceUnavailable
from vigil.agent.sources.registry import create_source


class NeedsUnicorn(EventSource):
    name = "unicorn"

    def requirements(self) -> list[str]:
        return ["the unicorn source needs a unicorn device (/dev/unicorn is missing)"]

    def _open(self) -> None:
        raise AssertionError("never opened when requirements fail")

    def _run(self) -> None:
        raise AssertionError("never run")


class BreaksOnOpen(EventSource):
    name = "broken"

    def requirements(self) -> list[str]:
        return []

    def _open(self) -> None:
        raise PermissionError(1, "Operation not permitted")

    def _run(self) -> None:
        raise AssertionError("never run")


def test_source_refuses_to_start_with_unmet_requirements() -> None:
    with pytest.raises(SourceUnavailable, match="unicorn device"):
        NeedsUnicorn().start(lambda r: None)


def test_unknown_source_name_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown event source 'ebpf'; known: audit, dns"):
        create_source("ebpf", {})


@needs_root
def test_unavailable_sources_are_reported_and_the_rest_runs(collector: Collector) -> None:
    sensor = Sensor(
        sources=["proc_connector", "ebpf"],
        exclude_pids=set(),
        extra_sources=[NeedsUnicorn(), BreaksOnOpen()],
    )
    try:
        sensor.start(collector)
        status = sensor.status()
        assert status == {
            "ebpf": "bad options: unknown event source 'ebpf'; known: audit, dns, fanotify_exec, files, "
            "netinv, proc_connector, procpoll",
            "proc_connector": None,
            "unicorn": "the unicorn source needs a unicorn device (/dev/unicorn is missing)",
            "broken": "could not start: [Errno 1] Operation not permitted",
        }
        p = subprocess.Popen(["sleep", "0.3"])
        p.wait()
        found = collector.wait_for(
            lambda e: (
                e["Event"]["System"]["EventID"] == 1 and e["Event"]["EventData"]["ProcessId"] == str(p.pid)
            )
        )
        assert len(found) == 1, "the running source still delivers"
    finally:
        sensor.stop()
    health = [
        e["Event"]["EventData"]
        for e in collector.events
        if e["Event"]["System"]["Channel"] == "Vigil/Operational"
    ]
    assert [(h["Source"], h["State"]) for h in health] == [
        ("ebpf", "unavailable"),
        ("unicorn", "unavailable"),
        ("broken", "unavailable"),
    ]
    assert all(
        e["Event"]["System"]["EventID"] == 102
        for e in collector.events
        if e["Event"]["System"]["Channel"] == "Vigil/Operational"
    )


@needs_root
def test_procpoll_is_started_when_the_process_connector_is_unavailable(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vigil.agent.sources import proc_connector

    monkeypatch.setattr(
        proc_connector.ProcConnectorSource,
        "requirements",
        lambda self: ["simulated: not in the initial network namespace"],
    )
    sensor = Sensor(
        sources=["proc_connector"], exclude_pids=set(), source_options={"procpoll": {"interval_s": 0.05}}
    )
    try:
        sensor.start(collector)
        assert sensor.status() == {
            "proc_connector": "simulated: not in the initial network namespace",
            "procpoll": None,
        }
        p = subprocess.Popen(["sleep", "0.5"])
        p.wait()
        time.sleep(0.2)
        created = collector.wait_for(
            lambda e: (
                e["Event"]["System"]["EventID"] == 1 and e["Event"]["EventData"]["ProcessId"] == str(p.pid)
            )
        )
        ended = collector.wait_for(
            lambda e: (
                e["Event"]["System"]["EventID"] == 5 and e["Event"]["EventData"]["ProcessId"] == str(p.pid)
            )
        )
    finally:
        sensor.stop()
    assert len(created) == 1 and created[0]["Event"]["EventData"]["CommandLine"] == "sleep 0.5"
    assert (
        len(ended) == 1
        and ended[0]["Event"]["EventData"]["ProcessGuid"] == created[0]["Event"]["EventData"]["ProcessGuid"]
    )


@needs_root
def test_default_sources_all_start_and_stop_cleanly(
    audit_ready: None, collector: Collector, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    sensor = Sensor(watch_paths=[str(tmp_path)], exclude_pids=set())
    try:
        sensor.start(collector)
        assert sensor.status() == {
            "proc_connector": None,
            "audit": None,
            "fanotify_exec": None,
            "netinv": None,
            "dns": None,
            "files": None,
        }
        (tmp_path / "x.txt").write_text("x")  # created by this process: the sensor still reports it
        found = collector.wait_for(
            lambda e: e["Event"]["EventData"].get("TargetFilename") == str(tmp_path / "x.txt")
        )
        assert len(found) == 1
    finally:
        sensor.stop()
    stats = sensor.stats()
    assert stats["dropped"] == 0 and stats["errors"] == 0


@needs_root
def test_processes_older_than_the_agent_get_image_hashes(tmp_path, collector: Collector) -> None:  # type: ignore[no-untyped-def]
    """This test process predates the sensor (known from /proc only): its image is hashed in the
    background after its first event, and its later events carry ImageHashes."""
    import hashlib
    import os
    import sys
    from pathlib import Path

    python_sha = hashlib.sha256(Path(os.path.realpath(sys.executable)).read_bytes()).hexdigest().upper()
    sensor = Sensor(sources=["files"], watch_paths=[str(tmp_path)], exclude_pids=set())
    try:
        sensor.start(collector)
        for name in ("first", "second"):
            (tmp_path / name).write_text("x")
            collector.wait_for(
                lambda e, n=name: e["Event"]["EventData"].get("TargetFilename") == str(tmp_path / n)
            )
            time.sleep(0.5)
    finally:
        sensor.stop()
    events = [e["Event"]["EventData"] for e in collector.events if e["Event"]["System"]["EventID"] == 11]
    assert [e["TargetFilename"] for e in events] == [str(tmp_path / "first"), str(tmp_path / "second")]
    assert events[0]["ImageHashes"] == "?"  # the first event does not wait for the hash
    assert f"SHA256={python_sha}" in events[1]["ImageHashes"]
