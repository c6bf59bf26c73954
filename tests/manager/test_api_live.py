"""Every route of both APIs, driven over TLS against a real manager on loopback.

The module records each request it sends; the last test proves every route of both apps was hit.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.routing import Route, WebSocketRoute
from websockets.sync.client import connect

from vigil.client import AdminClient, APIError
from vigil.manager.app import PUBLIC_PATHS, create_admin_app, create_endpoint_app, iter_routes
from vigil.manager.testing import GZIP, LiveManager, make_event, ndjson

SEEN: set[tuple[str, str, str]] = set()  # (api, method, path)


def _recorder(api: str):  # type: ignore[no-untyped-def]
    def hook(request: httpx.Request) -> None:
        SEEN.add((api, request.method, request.url.path))

    return hook


@pytest.fixture(scope="module")
def admin(live: LiveManager) -> Iterator[AdminClient]:
    with live.admin() as client:
        client._http.event_hooks["request"].append(_recorder("admin"))
        yield client


@pytest.fixture(scope="module")
def agent(live: LiveManager) -> Iterator[httpx.Client]:
    with live.agent(event_hooks={"request": [_recorder("endpoint")]}) as client:
        yield client


RULE = {
    "Name": "SuspiciousTool",
    "Tags": ["test"],
    "Meta": {
        "Events": {"Microsoft-Windows-Sysmon/Operational": [1]},
        "Criticality": 8,
        "ATTACK": [{"ID": "T1059", "Tactic": "execution", "Description": "", "Reference": ""}],
        "Schema": "2.0.0",
    },
    "Matches": ["$img: Image ~= 'tool\\d+\\.exe$'"],
    "Condition": "$img",
}
FILTER_RULE = {
    "Name": "OnlyFilter",
    "Meta": {"Filter": True, "Criticality": 0, "Schema": "2.0.0"},
    "Matches": ["$a: Image ~= 'tool'"],
    "Condition": "$a",
}
SYSMON_XML = (
    '<Sysmon schemaversion="4.70"><HashAlgorithms>md5,sha256</HashAlgorithms>'
    '<EventFiltering><RuleGroup name="g" groupRelation="or">'
    '<ProcessCreate onmatch="exclude"><Image condition="end with">svchost.exe</Image></ProcessCreate>'
    "</RuleGroup></EventFiltering></Sysmon>"
)


def test_key_and_empty_sync_state(agent: httpx.Client) -> None:
    response = agent.get("/key")
    assert (response.status_code, response.text) == (200, "vigil-test-server-key")
    rules = agent.get("/rules")
    assert rules.content == b""
    assert agent.get("/rules/sha256").text == hashlib.sha256(b"").hexdigest()
    assert agent.get("/iocs").json() == []
    assert agent.get("/iocs/sha256").text == hashlib.sha256(b"").hexdigest()
    assert agent.get("/commands").status_code == 204
    assert agent.get("/sysmon/config", params={"os": "windows", "version": "4.70"}).status_code == 204
    assert agent.get("/sysmon/config/sha256", params={"os": "windows", "version": "4.70"}).status_code == 204
    assert agent.get("/tools", params={"os": "windows"}).json() == {}


def test_users(admin: AdminClient, live: LiveManager) -> None:
    created = admin.new_user("alice")
    assert created["identifier"] == "alice" and len(created["key"]) == 64
    bob = admin.create_user("bob", group="soc", description="analyst")
    assert bob["group"] == "soc" and "key" in bob
    listed = admin.users()
    assert {u["identifier"] for u in listed} >= {"alice", "bob", "test-admin"}
    assert all("key" not in u for u in listed), "keys are never listed"
    assert admin.user(bob["uuid"])["description"] == "analyst"
    # bob's key works; after rotation only the new key does
    with live.admin(bob["key"]) as as_bob:
        assert as_bob.stats()["endpoint-count"] >= 1
    rotated = admin.update_user(bob["uuid"], newkey=True, description="lead")
    assert rotated["description"] == "lead" and rotated["key"] != bob["key"]
    with live.admin(bob["key"]) as old_bob, pytest.raises(APIError) as err:
        old_bob.stats()
    assert err.value.status == 403
    with live.admin(rotated["key"]) as new_bob:
        assert new_bob.stats()["rule-count"] >= 0
    with pytest.raises(APIError) as err:
        admin.create_user("alice")
    assert err.value.status == 409
    assert admin.delete_user(created["uuid"])["identifier"] == "alice"
    with pytest.raises(APIError) as err:
        admin.user(created["uuid"])
    assert err.value.status == 404


def test_endpoints(admin: AdminClient, live: LiveManager) -> None:
    new = admin.new_endpoint()
    assert len(new["key"]) == 64
    updated = admin.update_endpoint(new["uuid"], status="isolated", group="HR", criticality=7)
    assert (updated["status"], updated["group"], updated["criticality"]) == ("isolated", "HR", 7)
    assert "key" not in updated
    assert [e["uuid"] for e in admin.endpoints(group="HR")] == [new["uuid"]]
    assert [e["uuid"] for e in admin.endpoints(status="isolated")] == [new["uuid"]]
    assert new["uuid"] in {e["uuid"] for e in admin.endpoints(criticality=7)}
    assert new["uuid"] not in {e["uuid"] for e in admin.endpoints(criticality=8)}
    with pytest.raises(APIError) as err:
        admin.update_endpoint(new["uuid"], criticality=11)
    assert err.value.status == 400 and "criticality" in err.value.error
    # key rotation: the old key stops working on the endpoint API
    rotated = admin.update_endpoint(new["uuid"], newkey=True)
    with live.agent(new["uuid"], new["key"], hostname="h2") as old:
        assert old.get("/key").status_code == 403
    with live.agent(new["uuid"], rotated["key"], hostname="h2") as fresh:
        assert fresh.get("/key").status_code == 200
    assert admin.endpoint(new["uuid"])["hostname"] == "h2"
    assert admin.delete_endpoint(new["uuid"])["uuid"] == new["uuid"]
    with pytest.raises(APIError) as err:
        admin.endpoint(new["uuid"])
    assert err.value.status == 404


def test_hostname_pinning(live: LiveManager) -> None:
    uuid, key = live.new_endpoint()
    with live.agent(uuid, key, hostname="first") as first:
        assert first.get("/key").status_code == 200
    with live.agent(uuid, key, hostname="second") as second:
        response = second.get("/key")
    assert response.status_code == 403
    assert "same credentials" in response.json()["error"]


def test_endpoint_config_sync(admin: AdminClient, agent: httpx.Client, live: LiveManager) -> None:
    uuid = live.endpoint_uuid
    assert agent.get("/config").status_code == 204
    assert agent.get("/config/sha256").status_code == 204
    local = {"actions": {"low": [], "medium": ["brief"]}, "log-level": "info"}
    pushed = agent.post("/config", content=gzip.compress(orjson.dumps(local)), headers=GZIP)
    assert pushed.status_code == 200
    served = agent.get("/config")
    assert served.json() == local
    assert agent.get("/config/sha256").text == hashlib.sha256(served.content).hexdigest()
    assert agent.post("/config", json=local).status_code == 403, "only accepted when the manager has none"
    assert admin.endpoint_config(uuid) == local
    as_toml = admin.endpoint_config(uuid, toml=True)
    assert 'log-level = "info"' in as_toml
    admin.set_endpoint_config(uuid, 'log-level = "debug"\n[actions]\nlow = ["kill"]\n')
    assert agent.get("/config").json() == {"log-level": "debug", "actions": {"low": ["kill"]}}
    assert admin.set_endpoint_config(uuid, {"log-level": "warning"}) == {"log-level": "warning"}
    admin.delete_endpoint_config(uuid)
    assert admin.endpoint_config(uuid) is None
    assert agent.get("/config").status_code == 204


def test_system_info(admin: AdminClient, agent: httpx.Client, live: LiveManager) -> None:
    info = {"edr": {"version": "0.1.0", "commit": "abc"}, "os": {"name": "linux"}, "error": ""}
    assert (
        agent.post("/info/system", content=gzip.compress(orjson.dumps(info)), headers=GZIP).status_code == 200
    )
    assert admin.endpoint(live.endpoint_uuid)["system-info"] == info


def test_commands_flow(admin: AdminClient, agent: httpx.Client, live: LiveManager) -> None:
    uuid = live.endpoint_uuid
    drop_dir = live.config.data_dir / "drop"
    drop_dir.mkdir(exist_ok=True)
    (drop_dir / "tool.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    endpoint = admin.send_command(
        uuid, "ls -la '/tmp/a b'", fetch_files=["/etc/hostname"], drop_files=["tool.sh"]
    )
    assert "key" not in endpoint, "WHIDS leaks the key here; vigil does not"
    command = admin.command(uuid)
    assert (command["name"], command["args"], command["sent"]) == ("ls", ["-la", "/tmp/a b"], False)
    assert base64.b64decode(command["drop"][0]["data"]) == b"#!/bin/sh\necho hi\n"
    with pytest.raises(APIError) as err:
        admin.send_command(uuid, "ls", drop_files=["../manager.db"])
    assert err.value.status == 400

    def run_agent() -> None:
        time.sleep(0.3)
        pending = agent.get("/commands")
        assert pending.status_code == 200
        job = pending.json()
        assert agent.get("/commands").status_code == 204, "a command is handed out once"
        job.update(
            stdout=base64.b64encode(b"total 0\n").decode(),
            stderr="",
            error="",
            fetch={
                "/etc/hostname": {
                    "name": "/etc/hostname",
                    "data": base64.b64encode(b"h\n").decode(),
                    "error": "",
                }
            },
        )
        agent.post("/commands", content=gzip.compress(orjson.dumps(job)), headers=GZIP).raise_for_status()

    worker = threading.Thread(target=run_agent)
    worker.start()
    done = admin.command(uuid, wait=True)
    worker.join()
    assert done["completed"] is True and done["sent"] is True
    assert base64.b64decode(admin.command_field(uuid, "stdout")) == b"total 0\n"
    assert admin.command_field(uuid, "completed") is True
    assert admin.command_field(uuid, "error") == ""
    assert admin.command_field(uuid, "stderr") == ""
    assert "/etc/hostname" in admin.command_field(uuid, "files")
    with pytest.raises(APIError) as err:
        admin.command_field(uuid, "bogus")
    assert err.value.status == 400


def test_rules_sync_and_validation(admin: AdminClient, agent: httpx.Client) -> None:
    stored = admin.add_rules([RULE, FILTER_RULE])
    assert [r["Name"] for r in stored] == ["SuspiciousTool", "OnlyFilter"]
    body = agent.get("/rules").content
    lines = body.decode().splitlines()
    assert [orjson.loads(x)["Name"] for x in lines] == ["OnlyFilter", "SuspiciousTool"], "sorted by name"
    assert body.endswith(b"\n")
    assert agent.get("/rules/sha256").text == hashlib.sha256(body).hexdigest()
    assert [r["Name"] for r in admin.rules(name="^Susp")] == ["SuspiciousTool"]
    assert [r["Name"] for r in admin.rules(filters=True)] == ["OnlyFilter"]
    with pytest.raises(APIError) as err:
        admin.add_rules([RULE])
    assert err.value.status == 409, "existing name without update"
    changed = {**RULE, "Tags": ["changed"]}
    admin.add_rules([changed], update=True)
    assert admin.rules(name="SuspiciousTool")[0]["Tags"] == ["changed"]
    assert [r["Name"] for r in admin.delete_rule("OnlyFilter")] == ["OnlyFilter"]
    assert admin.stats()["rule-count"] == 1


def test_sigma_rules_sync_next_to_gene_rules(admin: AdminClient, agent: httpx.Client) -> None:
    gene_body = agent.get("/rules").content
    rule = (
        "title: Live Sigma Rule\nid: 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d\n"
        "logsource: {product: linux, category: process_creation}\n"
        "detection: {selection: {Image|endswith: /socat}, condition: selection}\nlevel: low\n"
    )
    [stored] = admin.add_sigma_rules(rule)
    assert stored["title"] == "Live Sigma Rule" and stored["criticality"] == 3
    body = agent.get("/rules/sigma")
    assert body.content == f"---\n{rule}".encode() and body.headers["content-type"].startswith(
        "application/yaml"
    )
    assert agent.get("/rules/sigma/sha256").text == hashlib.sha256(body.content).hexdigest()
    assert agent.get("/rules").content == gene_body, "the Gene set is not touched"
    assert [r["title"] for r in admin.sigma_rules()] == ["Live Sigma Rule"]
    assert [r["id"] for r in admin.delete_sigma_rule(stored["id"])] == [stored["id"]]
    assert agent.get("/rules/sigma").content == b""


def test_iocs(admin: AdminClient, agent: httpx.Client) -> None:
    group = "11111111-2222-3333-4444-555555555555"

    def ioc(n: int, guuid: str, source: str, value: str, type_: str) -> dict[str, str]:
        uuid = f"aaaaaaaa-0000-0000-0000-00000000000{n}"
        return {"uuid": uuid, "guuid": guuid, "source": source, "value": value, "type": type_}

    iocs = [
        ioc(1, group, "misp", "evil.com", "domain"),
        ioc(2, group, "misp", "D41D8CD98F00B204E9800998ECF8427E", "MD5"),
        ioc(3, group.replace("1", "9"), "other", "evil.com", "domain"),
    ]
    added = admin.add_iocs(iocs)
    assert added[1]["value"] == "d41d8cd98f00b204e9800998ecf8427e" and added[1]["type"] == "md5"
    values = agent.get("/iocs").json()
    assert values == ["evil.com", "d41d8cd98f00b204e9800998ecf8427e"], "deduplicated, insertion order"
    assert agent.get("/iocs/sha256").text == hashlib.sha256("".join(values).encode()).hexdigest()
    assert len(admin.iocs(source="other", type="md5")) == 2, "GET ORs its parameters"
    assert admin.delete_iocs() is None, "no parameter deletes nothing"
    assert admin.delete_iocs(source="misp", type="domain")[0]["uuid"].endswith("1"), "DELETE ANDs"
    assert len(admin.iocs()) == 2
    with pytest.raises(APIError) as err:
        admin.add_iocs([{**iocs[0], "type": "sha1", "value": "abc"}])
    assert err.value.status == 400 and "iocs[0].value" in err.value.error


def test_sysmon_config_and_tools(admin: AdminClient, agent: httpx.Client) -> None:
    config = admin.set_sysmon_config("windows", SYSMON_XML)
    assert config["schemaversion"] == "4.70" and config["OS"] == "windows"
    group = config["EventFiltering"]["RuleGroup"][0]
    assert group["ProcessCreate"]["Image"] == [{"condition": "end with", "value": "svchost.exe"}]
    served = agent.get("/sysmon/config", params={"os": "windows", "version": "4.70"})
    assert served.json() == config
    assert (
        agent.get("/sysmon/config/sha256", params={"os": "windows", "version": "4.70"}).text
        == config["XmlSha256"]
    )
    assert admin.sysmon_config("windows", version="4.70") == config
    assert admin.sysmon_config("windows", xml=True).startswith("<Sysmon")
    again = admin.set_sysmon_config(
        "linux", {k: v for k, v in config.items() if k not in ("OS", "XmlSha256")}
    )
    assert again["XmlSha256"] == config["XmlSha256"], "same content, same hash"
    with pytest.raises(APIError) as err:
        admin.set_sysmon_config("windows", '<Sysmon schemaversion="x"/>')
    assert err.value.status == 400
    assert admin.delete_sysmon_config("linux")["OS"] == "linux"

    binary = b"MZ fake sysmon"
    tool = admin.set_tool("windows", "sysmon", binary)
    assert tool["metadata"]["sha256"] == hashlib.sha256(binary).hexdigest() and "binary" not in tool
    assert base64.b64decode(admin.tool("windows", "sysmon", binary=True)["binary"]) == binary
    admin.set_tool("windows", "osqueryi", b"osquery")
    tools = agent.get("/tools", params={"os": "windows", "hash": hashlib.sha1(binary).hexdigest()}).json()
    assert list(tools) == ["sysmon"]
    with_binary = agent.get("/tools", params={"os": "windows", "binary": "true"}).json()
    assert base64.b64decode(with_binary["osqueryi"]["binary"]) == b"osquery"
    assert admin.tool("windows", "osqueryi")["name"] == "osqueryi"
    assert admin.delete_tool("windows", "osqueryi")["name"] == "osqueryi"
    assert admin.delete_tool("windows", "sysmon")["name"] == "sysmon"
    with pytest.raises(APIError) as err:
        admin.tool("windows", "sysmon")
    assert err.value.status == 404
    assert admin.delete_sysmon_config("windows", version="4.70")["schemaversion"] == "4.70"


def _read_stream(
    live: LiveManager, path: str, want: int, out: list[dict[str, Any]], ready: threading.Event
) -> None:
    uri = live.admin_url.replace("https", "wss") + path
    with connect(uri, ssl=live.ssl_context, additional_headers={"X-Api-Key": live.admin_key}) as ws:  # type: ignore[arg-type]
        SEEN.add(("admin", "WS", path))
        ready.set()
        while len(out) < want:
            out.append(orjson.loads(ws.recv(timeout=10)))


def test_logs_streams_search_and_reports(admin: AdminClient, agent: httpx.Client, live: LiveManager) -> None:
    uuid = live.endpoint_uuid
    events_seen: list[dict[str, Any]] = []
    detections_seen: list[dict[str, Any]] = []
    ready = [threading.Event(), threading.Event()]
    readers = [
        threading.Thread(target=_read_stream, args=(live, "/stream/events", 6, events_seen, ready[0])),
        threading.Thread(
            target=_read_stream, args=(live, "/stream/detections", 2, detections_seen, ready[1])
        ),
    ]
    for reader in readers:
        reader.start()
    assert all(r.wait(10) for r in ready)
    time.sleep(0.2)
    times = [f"2026-01-02T03:0{i}:00Z" for i in range(6)]
    batch = [make_event(i, time=times[i]) for i in range(6)]
    batch[2]["Event"]["Detection"] = {"Signature": ["SuspiciousTool", "Builtin:HashIoC"], "Criticality": 10}
    batch[4]["Event"]["Detection"] = {"Signature": ["SuspiciousTool"], "Criticality": 8}
    response = agent.post("/logs", content=ndjson(batch), headers=GZIP)
    assert response.json()["data"]["stored"] == 6 and response.json()["data"]["detections"] == 2
    for reader in readers:
        reader.join(timeout=15)
    assert [e["Event"]["EventData"]["N"] for e in events_seen] == ["0", "1", "2", "3", "4", "5"]
    assert [e["Event"]["EventData"]["N"] for e in detections_seen] == ["2", "4"]
    assert detections_seen[0]["Event"]["EdrData"]["Endpoint"]["UUID"] == uuid
    assert detections_seen[0]["Event"]["EdrData"]["Event"]["Detection"] is True

    replay = agent.post("/logs", content=ndjson(batch), headers=GZIP).json()["data"]
    assert (replay["stored"], replay["duplicates"]) == (0, 6), "a retried batch is stored once"

    window = {"since": "2026-01-02T03:00:00Z", "until": "2026-01-02T03:10:00Z"}
    logs = admin.logs(uuid, **window)
    assert [e["Event"]["EventData"]["N"] for e in logs] == ["0", "1", "2", "3", "4", "5"]
    assert logs[0]["Event"]["EdrData"]["Event"]["Hash"] == events_seen[0]["Event"]["EdrData"]["Event"]["Hash"]
    # The hash contract: a compact line without EdrData is hashed as sent (ndjson() sends orjson.dumps).
    assert logs[0]["Event"]["EdrData"]["Event"]["Hash"] == hashlib.sha1(orjson.dumps(batch[0])).hexdigest()
    assert [e["Event"]["EventData"]["N"] for e in admin.logs(uuid, **window, limit=2)] == ["0", "1"]
    assert [e["Event"]["EventData"]["N"] for e in admin.logs(uuid, **window, limit=2, order="desc")] == [
        "5",
        "4",
    ]
    assert [e["Event"]["EventData"]["N"] for e in admin.logs(uuid, **window, skip=4)] == ["4", "5"]
    pivot = admin.logs(uuid, pivot="2026-01-02T03:03:00Z", delta="1m")
    assert [e["Event"]["EventData"]["N"] for e in pivot] == ["2", "3", "4"]
    assert admin.logs(uuid, last="1h") == [], "events are from 2026-01-02, not the last hour"
    detections = admin.detections(uuid, **window)
    assert [e["Event"]["EventData"]["N"] for e in detections] == ["2", "4"]
    with pytest.raises(APIError) as err:
        admin.logs(uuid, since="2026-01-03T00:00:00Z", until="2026-01-02T00:00:00Z")
    assert err.value.status == 400

    # Report (§5.3): 2 alerts; sigs SuspiciousTool x2 (crit 8), Builtin:HashIoC x1 (unknown to the manager).
    report = admin.report(uuid)
    assert report is not None
    assert report["alert-count"] == 2 and report["signature-count"] == 3
    assert report["count-by-signature"] == {"SuspiciousTool": 2, "Builtin:HashIoC": 1}
    assert report["sum-rule-criticality"] == 16 and report["sum-alert-criticality"] == 16
    assert report["avg-alert-criticality"] == 8.0 and report["avg-signature-criticality"] == 5.33
    assert report["techniques"] == ["T1059"] and report["tactics"] == ["execution"]
    assert report["signature-diversity"] == 100.0 and report["count-uniq-signatures"] == 2
    assert report["signature-criticality-metric"] == 10 and report["alert-criticality-metric"] == 800
    assert report["score"] == 810 and report["bounded-score"] == 100.0
    assert report["start-time"] == "2026-01-02T03:02:00Z" and report["stop-time"] == "2026-01-02T03:04:00Z"
    assert report["median-time"] == "2026-01-02T03:03:00Z"
    assert admin.reports()[uuid] == report
    assert admin.endpoint(uuid)["score"] == 100.0
    archived = admin.archive_report(uuid)
    assert archived["score"] == 810
    assert admin.report(uuid) is None
    archive = admin.report_archive(uuid)
    assert archive[0]["score"] == 810 and "archived-time" in archive[0]
    with pytest.raises(APIError) as err:
        admin.archive_report(uuid)
    assert err.value.status == 404


def test_artifact_upload_and_download(admin: AdminClient, agent: httpx.Client, live: LiveManager) -> None:
    uuid = live.endpoint_uuid
    guid = "{515cd0d1-c09c-615c-6886-000000008b00}"
    ehash = "107115af9a7ae294b66499d9f24b4da40840f8dc"
    raw = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(2000))
    payload = gzip.compress(raw)
    pieces = [payload[i : i + 10_000] for i in range(0, len(payload), 10_000)]
    assert len(pieces) > 1
    for n, piece in enumerate(pieces, start=1):
        upload = {
            "filename": "dump.bin.gz",
            "guid": guid,
            "event-hash": ehash,
            "content": base64.b64encode(piece).decode(),
            "chunk": n,
            "total": len(pieces),
        }
        response = agent.post("/upload/dumps", content=gzip.compress(orjson.dumps(upload)), headers=GZIP)
        assert response.status_code == 200, response.text
    groups = admin.artifacts(uuid)
    assert len(groups) == 1
    group = groups[0]
    assert group["process-guid"] == guid.strip("{}") and group["event-hash"] == ehash
    assert group["base-url"] == f"/endpoints/{uuid}/artifacts/{guid.strip('{}')}/{ehash}/"
    assert group["files"][0]["name"] == "dump.bin.gz" and group["files"][0]["size"] == len(payload)
    assert admin.artifact(uuid, guid, ehash, "dump.bin.gz") == payload
    assert admin.artifact(uuid, guid, ehash, "dump.bin.gz", gunzip=True) == raw
    enveloped = admin.request("GET", f"/endpoints/{uuid}/artifacts/{guid.strip('{}')}/{ehash}/dump.bin.gz")
    assert base64.b64decode(enveloped) == payload
    assert uuid in admin.all_artifacts()
    assert admin.all_artifacts(since="2100-01-01T00:00:00Z") == {uuid: []}


def test_stats(admin: AdminClient) -> None:
    stats = admin.stats()
    assert set(stats) == {"endpoint-count", "rule-count"} and stats["endpoint-count"] >= 2


def test_openapi_and_docs_are_served(live: LiveManager) -> None:
    with httpx.Client(verify=live.ssl_context) as client:
        doc = client.get(live.admin_url + "/openapi.json").json()
        assert "/endpoints/{uuid}/detections" in doc["paths"]
        assert doc["components"]["securitySchemes"]["ApiKeyAuth"]["name"] == "X-Api-Key"
        assert "swagger" in client.get(live.admin_url + "/docs").text.lower()


def test_every_route_was_driven(live: LiveManager) -> None:
    missing = []
    for api, app in (
        ("admin", create_admin_app(live.manager)),
        ("endpoint", create_endpoint_app(live.manager)),
    ):
        for route in iter_routes(app):
            if isinstance(route, WebSocketRoute):
                if ("admin", "WS", route.path) not in SEEN:
                    missing.append(("WS", route.path))
            elif isinstance(route, Route) and route.path not in PUBLIC_PATHS:
                for method in route.methods or ():
                    if method == "HEAD":
                        continue
                    hit = any(a == api and m == method and route.path_regex.match(p) for a, m, p in SEEN)
                    if not hit:
                        missing.append((method, route.path))
    assert missing == []
