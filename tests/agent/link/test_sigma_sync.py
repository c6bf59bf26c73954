"""The agent's Sigma rule sync against a real manager (TLS, loopback), through to detection.

A Sigma rule uploaded with the admin API reaches ``<rules dir>/manager-sigma.yml``, the link's
reload swaps in an engine and a correlation engine built from the rules directory, and a matching
event gets a Detection whose Signature is the rule's title and whose SigmaIDs are its id.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.agent.fakes import proc_event
from tests.agent.tls_server import TLSServer
from tests.manager.test_sigma_rules import BURST, BURST_ID, EXEC_ID, exec_rule

from vigil.agent.config_loader import load_config
from vigil.agent.detection import Detector, build_engine
from vigil.agent.link.client import EndpointClient, ManagerAddress
from vigil.agent.link.service import ManagerService, validate_sigma_rules
from vigil.agent.link.sync import SIGMA_RULES_FILE, sigma_rule_sync
from vigil.manager.testing import LiveManager

BINARY = "/opt/vigil-test/sigma-synced-tool"
GENE_LOCAL = (
    '{"Name": "LocalGeneRule", "Meta": {"Events": {"Linux-Sysmon/Operational": [1]}, "Criticality": 4,'
    ' "Schema": "2.0.0"}, "Matches": ["$m: Image = \'/usr/bin/local-only\'"], "Condition": "$m"}'
)


def exec_event(n: int, image: str = BINARY) -> dict[str, Any]:
    event = proc_event(1000 + n, image, CommandLine=f"{image} run{n}")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    event["Event"]["System"]["TimeCreated"] = {"SystemTime": f"{stamp}.{n:06d}Z"}
    return event


def agent_for(tmp_path: Path) -> tuple[Any, Path]:
    config = load_config(env={}, overrides=[f"data_dir={tmp_path / 'agent'}"])
    rules_dir = Path(config.rules.dir)
    rules_dir.mkdir(parents=True)
    (rules_dir / "local.gen").write_text(GENE_LOCAL)
    detector = Detector.from_config(build_engine(config), config)
    return SimpleNamespace(config=config, pipeline=SimpleNamespace(detector=detector)), rules_dir


def client_for(live: LiveManager) -> EndpointClient:
    address = ManagerAddress(
        url=live.endpoint_url, uuid=live.endpoint_uuid, key=live.endpoint_key, fingerprint=live.fingerprint
    )
    return EndpointClient(address, hostname="sigma-agent", timeout=10)


def test_sigma_rule_from_the_admin_api_detects_on_the_agent(tmp_path: Path) -> None:
    agent, rules_dir = agent_for(tmp_path)
    detector = agent.pipeline.detector
    with LiveManager(tmp_path / "manager") as live, live.admin() as admin:
        client = client_for(live)
        sync = sigma_rule_sync(
            client, rules_dir, validate=validate_sigma_rules, apply=ManagerService(agent).reload
        )
        local = rules_dir / SIGMA_RULES_FILE
        assert sync.run_once() is False and not local.exists(), "no Sigma rules: no file"
        assert detector.inspect(exec_event(0)).report is False

        admin.add_sigma_rules(exec_rule(binary=BINARY) + "---\n" + BURST)
        assert sync.run_once() is True
        served = live.manager.rules.sigma
        assert local.read_bytes() == served.body
        assert hashlib.sha256(local.read_bytes()).hexdigest() == served.sha256
        assert sync.run_once() is False, "same sha256: nothing downloaded again"

        events = [exec_event(i) for i in range(1, 4)]
        verdicts = [detector.inspect(e) for e in events]
        assert all(v.alert for v in verdicts)
        first = events[0]["Event"]["Detection"]
        assert first["Signature"] == ["Sigma Test Exec"] and first["SigmaIDs"] == [EXEC_ID]
        assert first["Criticality"] == 8
        assert [a["ID"] for a in first["ATTACK"]] == ["T1059.004"]
        # The third exec in a minute on one host completes the event_count correlation rule.
        assert "Correlations" not in events[1]["Event"]["Detection"]
        third = events[2]["Event"]["Detection"]
        assert third["Signature"] == ["Sigma Test Exec", "Sigma Test Exec Burst"]
        assert third["SigmaIDs"] == [EXEC_ID, BURST_ID] and third["Criticality"] == 10
        assert third["Correlations"][0]["Type"] == "event_count"
        # Local Gene rules keep working next to the synced Sigma rules.
        local_hit = exec_event(9, "/usr/bin/local-only")
        detector.inspect(local_hit)
        assert local_hit["Event"]["Detection"]["Signature"] == ["LocalGeneRule"]

        admin.delete_sigma_rule(BURST_ID)
        admin.delete_sigma_rule(EXEC_ID)
        assert sync.run_once() is True
        assert not local.exists(), "an empty Sigma set removes the file"
        assert detector.inspect(exec_event(5)).report is False
        assert detector.correlation is None
        client.close()


def test_agent_refuses_a_sigma_set_that_does_not_compile_and_keeps_the_old_one(
    tmp_path: Path, tls_server: TLSServer
) -> None:
    from tests.agent.link.test_sync import _client

    good = f"---\n{exec_rule(binary=BINARY)}".encode()
    bad = good.replace(b"Image|endswith", b"Image|endswiht")
    applied: list[int] = []
    sync = sigma_rule_sync(
        _client(tls_server), tmp_path, validate=validate_sigma_rules, apply=lambda: applied.append(1)
    )

    def serve(body: bytes, announced: str | None = None) -> None:
        tls_server.sink.routes["/rules/sigma"] = (200, body)
        tls_server.sink.routes["/rules/sigma/sha256"] = (
            200,
            (announced or hashlib.sha256(body).hexdigest()).encode(),
        )

    serve(good)
    assert sync.run_once() is True and (tmp_path / SIGMA_RULES_FILE).read_bytes() == good
    serve(bad)
    assert sync.run_once() is False
    assert (tmp_path / SIGMA_RULES_FILE).read_bytes() == good, "the old set stays"
    assert (
        "Unknown modifier 'endswiht'" in sync.state.last_error and "Sigma Test Exec" in sync.state.last_error
    )
    serve(good.replace(b"Sigma Test Exec", b"Tampered"), announced=hashlib.sha256(b"another set").hexdigest())
    assert sync.run_once() is False and "differs from the announced" in sync.state.last_error
    assert applied == [1]


def test_validate_sigma_rules_names_every_problem() -> None:
    assert validate_sigma_rules(f"---\n{exec_rule()}".encode()) == []
    assert validate_sigma_rules(b"\xff") and "UTF-8" in validate_sigma_rules(b"\xff")[0]
    twice = f"---\n{exec_rule()}---\n{exec_rule('5f1f5c2a-4f9e-4a53-9d0c-1b7c6a1e0099')}".encode()
    assert any("title used twice" in e for e in validate_sigma_rules(twice))
    cloud = exec_rule().replace(
        "product: linux\n    category: process_creation", "product: aws\n    service: x"
    )
    [error] = validate_sigma_rules(cloud.encode())
    assert "[logsource]" in error and "Sigma Test Exec" in error


def test_a_whids_manager_without_sigma_routes_serves_an_empty_set(
    tmp_path: Path, tls_server: TLSServer
) -> None:
    from tests.agent.link.test_sync import _client

    tls_server.sink.routes.pop("/rules/sigma/sha256", None)
    client = _client(tls_server)
    if client._request("GET", "/rules/sigma/sha256", ok=(200, 404)).status_code != 404:
        raise AssertionError("the fake server should not know /rules/sigma/sha256")
    sync = sigma_rule_sync(client, tmp_path, validate=validate_sigma_rules, apply=lambda: None)
    assert sync.run_once() is False and not (tmp_path / SIGMA_RULES_FILE).exists()
