"""The manager output and the link service without kernel sensors, against a real TLS manager."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

from vigil.agent.actions.artifacts import event_hash
from vigil.agent.config import AgentConfig, ManagerConfig, RulesConfig, SpoolConfig
from vigil.agent.link.output import ManagerOutput, manager_output_factory
from vigil.agent.link.service import AGENT_HEALTH, ManagerService, shareable_config, validate_rules
from vigil.agent.spool import Spool
from vigil.manager.ingest import parse_ndjson
from vigil.manager.testing import LiveManager
from vigil.manager.tls import public_key_fingerprint


def sysmon_event(n: int) -> dict[str, Any]:
    return {
        "Event": {
            "System": {"Channel": "Linux-Sysmon/Operational", "EventID": 1, "Computer": "h",
                       "TimeCreated": {"SystemTime": "2026-01-02T03:04:05.123456789Z"}},
            "EventData": {"Image": "/usr/bin/x", "CommandLine": f"x {n}", "ProcessGuid": "{0}", "Ratio": 0.1},
            "Detection": {"Signature": ["R"], "Criticality": 6, "Actions": ["filedump"]},
        }
    }  # fmt: skip


def test_write_is_durable_before_it_returns_and_wakes_the_forwarder(tmp_path: Path) -> None:
    output = ManagerOutput(Spool(tmp_path / "events.db"))
    woken = []
    output.notify = lambda: woken.append(1)
    output.write(sysmon_event(1), alert=True)
    reopened = Spool(tmp_path / "events.db")  # another connection sees the committed row
    [row] = reopened.peek(10)
    assert orjson.loads(row.body) == sysmon_event(1)
    assert woken == [1]
    assert output.stats()["written"] == 1


def test_telemetry_is_committed_at_flush_in_one_transaction(tmp_path: Path) -> None:
    output = ManagerOutput(Spool(tmp_path / "events.db"))
    for n in range(3):
        output.write(sysmon_event(n), alert=False)
    assert len(Spool(tmp_path / "events.db").peek(10)) == 0  # not yet: the pipeline flushes per batch
    output.flush()
    rows = Spool(tmp_path / "events.db").peek(10)
    assert [orjson.loads(r.body)["Event"]["EventData"]["CommandLine"] for r in rows] == ["x 0", "x 1", "x 2"]
    output.write(sysmon_event(9), alert=False)
    output.close()  # close flushes what is left
    assert len(Spool(tmp_path / "events.db").peek(10)) == 4


def test_the_manager_hash_is_the_artifact_directory_hash(tmp_path: Path) -> None:
    """Alerts link to their artifacts: the manager's EdrData.Event.Hash equals the actions' hash.

    The manager hashes a line without EdrData as received, so this holds because the output spools
    the canonical form (sorted keys), whatever the order the event's keys were built in.
    """
    event = sysmon_event(7)
    event["Event"] = dict(reversed(event["Event"].items()))  # not in sorted order
    output = ManagerOutput(Spool(tmp_path / "events.db"))
    output.write(event, alert=True)
    [spooled] = output.spool.peek(10)  # what the forwarder sends, one line per event
    [row] = parse_ndjson(spooled.body + b"\n", receipt=0).rows
    assert row.hash == event_hash(event) == spooled.hash
    assert row.body == spooled.body, "stored as sent"


def test_rule_validation_names_the_error() -> None:
    good = b'{"Name": "A", "Meta": {"Schema": "2.0.0"}, "Matches": ["$a: Image = \'x\'"], "Condition": "$a"}'
    assert validate_rules(good) == []
    errors = validate_rules(b'{"Name": "B", "Matches": ["$a: Image = \'x\'"], "Condition": "$b"}')
    assert errors and any("B" in e or "$b" in e for e in errors)
    assert validate_rules(b"\xff") and "UTF-8" in validate_rules(b"\xff")[0]


def test_shared_config_leaves_the_key_out() -> None:
    config = AgentConfig(
        manager=ManagerConfig(url="https://m:1", uuid="03e31275-2277-d8e0-bb5f-480fac7ee4ef", key="k")
    )
    shared = shareable_config(config)
    assert "key" not in shared["manager"] and shared["manager"]["url"] == "https://m:1"


def test_health_event_carries_the_spool_eviction_count_to_the_manager(tmp_path: Path) -> None:
    with LiveManager(tmp_path / "manager") as live:
        fingerprint = public_key_fingerprint(live.cert.read_bytes())
        config = AgentConfig(
            data_dir=str(tmp_path / "agent"),
            stats_interval=0.2,
            manager=ManagerConfig(
                url=live.endpoint_url, uuid=live.endpoint_uuid, key=live.endpoint_key, fingerprint=fingerprint
            ),
            spool=SpoolConfig(max_mb=1),
            rules=RulesConfig(update_interval=30),
        ).resolved()
        output = manager_output_factory(config)
        # Fill the spool past its cap before the link runs: the oldest events are evicted.
        big = {"Event": {"System": {"Channel": "X"}, "EventData": {"Blob": "a" * 20000}}}
        for i in range(80):
            big["Event"]["EventData"]["N"] = str(i)
            output.write(big, alert=True)
        evicted = output.spool.evicted
        assert evicted > 0
        agent = SimpleNamespace(
            config=config,
            pipeline=SimpleNamespace(outputs=[output], tracker=None, detector=SimpleNamespace(engine=None)),
        )
        service = ManagerService(agent)
        service.start()
        try:
            deadline = time.monotonic() + 15
            health: list[dict[str, Any]] = []
            with live.admin() as admin:
                while time.monotonic() < deadline and not health:
                    logs = admin.logs(live.endpoint_uuid, last="24h", limit=10000)
                    health = [e for e in logs if e["Event"]["System"].get("EventID") == AGENT_HEALTH]
                    time.sleep(0.2)
        finally:
            service.stop()
        assert health, "no agent-health event reached the manager"
        data = health[0]["Event"]["EventData"]
        assert int(data["SpoolEvicted"]) == evicted
        assert health[0]["Event"]["System"]["Channel"] == "Vigil/Operational"


def test_config_from_the_manager_restarts_the_agent_once_and_keeps_the_local_manager_section(
    tmp_path: Path,
) -> None:
    from vigil.agent.link.sync import config_digest

    local = AgentConfig(
        data_dir=str(tmp_path),
        manager=ManagerConfig(url="https://m:1", uuid="03e31275-2277-d8e0-bb5f-480fac7ee4ef", key="k"),
    ).resolved()
    restarts: list[AgentConfig] = []
    agent = SimpleNamespace(config=local, pipeline=None, request_restart=restarts.append)
    service = ManagerService(agent)
    remote = shareable_config(local)
    remote["log_all"] = True
    remote["manager"] = {"url": "https://evil:1", "uuid": "00000000-0000-0000-0000-000000000000"}
    assert service._replace_config(remote) == []
    [new] = restarts
    assert new.log_all is True
    assert (new.manager.url, new.manager.key) == ("https://m:1", "k")  # never taken from the manager
    agent.config = new  # the daemon restarted with it
    assert config_digest(service._local_config()) == config_digest(remote)  # no pull again

    bad = dict(remote, criticality_threshold=42)
    errors = service._replace_config(bad)
    assert errors and "criticality_threshold" in errors[0]
    assert len(restarts) == 1


def test_containment_keeps_every_address_of_the_manager_reachable() -> None:
    from vigil.agent.containment import parse_allowed
    from vigil.agent.link.service import manager_allowed

    allowed = manager_allowed("https://localhost:41519/")
    assert "127.0.0.1:41519" in allowed
    assert all(a.port == 41519 for a in parse_allowed(allowed))  # containment accepts every entry
    assert manager_allowed("https://[::1]:41519") == ["[::1]:41519"]
    assert manager_allowed("http://127.0.0.1") == ["127.0.0.1:80"]
