"""Bad input gets a clear error naming what is wrong, and nothing else is lost."""

from __future__ import annotations

import base64
import gzip
import os
from collections.abc import Iterator

import httpx
import orjson
import pytest

from vigil.client import AdminClient, APIError
from vigil.manager.testing import GZIP, LiveManager, make_event, ndjson

LIMIT = 1024 * 1024  # the live fixture's max_body_bytes
GUID = "{515cd0d1-c09c-615c-6886-000000008b00}"
EHASH = "107115af9a7ae294b66499d9f24b4da40840f8dc"


@pytest.fixture(scope="module")
def admin(live: LiveManager) -> Iterator[AdminClient]:
    with live.admin() as client:
        yield client


@pytest.fixture(scope="module")
def agent(live: LiveManager) -> Iterator[httpx.Client]:
    with live.agent() as client:
        yield client


def test_malformed_ndjson_lines_are_counted_and_the_rest_stored(
    agent: httpx.Client, admin: AdminClient, live: LiveManager
) -> None:
    good = [make_event(100 + i, time=f"2026-02-01T00:00:0{i}Z") for i in range(3)]
    lines = [
        orjson.dumps(good[0]),
        b'{"Event": {"System": ',  # truncated JSON
        orjson.dumps(good[1]),
        b"[1, 2, 3]",  # JSON, but not an event
        b'{"NotEvent": {}}',
        b"",  # blank lines are not errors
        orjson.dumps(good[2]),
    ]
    response = agent.post("/logs", content=gzip.compress(b"\n".join(lines)), headers=GZIP)
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["stored"], data["malformed"], data["received"]) == (3, 3, 6)
    assert [m["line"] for m in data["malformed-lines"]] == [2, 4, 5]
    assert "invalid JSON" in data["malformed-lines"][0]["error"]
    assert "not an event" in data["malformed-lines"][1]["error"]
    stored = admin.logs(live.endpoint_uuid, since="2026-02-01T00:00:00Z", until="2026-02-01T00:01:00Z")
    assert [e["Event"]["EventData"]["N"] for e in stored] == ["100", "101", "102"]


def test_invalid_gzip_is_refused(agent: httpx.Client) -> None:
    response = agent.post("/logs", content=b"\x1f\x8bnot really gzip", headers=GZIP)
    assert response.status_code == 400
    assert "gzip" in response.json()["error"]


def test_oversized_bodies_get_413(agent: httpx.Client, admin: AdminClient) -> None:
    big = b"x" * (LIMIT + 1)
    response = agent.post("/logs", content=big)
    assert response.status_code == 413
    assert "over" in response.json()["error"]
    # A small gzip body that inflates past the limit is refused too (gzip bomb).
    bomb = gzip.compress(b"\n" * (LIMIT * 4))
    assert len(bomb) < LIMIT
    response = agent.post("/logs", content=bomb, headers=GZIP)
    assert response.status_code == 413
    # Chunked transfer without Content-Length is counted as it streams.
    response = agent.post("/logs", content=iter([b"y" * 65536] * 20))
    assert response.status_code == 413
    with pytest.raises(APIError) as err:
        admin.set_tool("windows", "sysmon", os.urandom(LIMIT + 10))
    assert err.value.status == 413
    assert agent.get("/key").status_code == 200, "the server keeps serving"


def test_invalid_rules_return_every_error_and_store_nothing(admin: AdminClient, live: LiveManager) -> None:
    before = admin.rules()
    meta = {"Criticality": 5, "Schema": "2.0.0"}
    rules = [
        {"Name": "Good", "Meta": meta, "Matches": ["$a: Image = 'x'"], "Condition": "$a"},
        {"Name": "NoSchema", "Meta": {"Criticality": 5}, "Matches": ["$a: Image = 'x'"], "Condition": "$a"},
        {"Name": "BadMatch", "Meta": meta, "Matches": ["Image = 'x'"], "Condition": "$a"},
        {"Name": "BadCondition", "Meta": meta, "Matches": ["$a: Image = 'x'"], "Condition": "$a and ($b"},
        {"Meta": meta, "Matches": [], "Condition": ""},
        "not a rule",
        {"Name": "Good", "Meta": meta, "Matches": ["$b: Image = 'y'"], "Condition": "$b"},
    ]
    with pytest.raises(APIError) as err:
        admin.request("POST", "/rules", json=rules)
    assert err.value.status == 400 and "nothing was stored" in err.value.error
    problems = err.value.data
    by_line = {p["line"]: p for p in problems}
    assert "rule version >= 2.0.0" in by_line[2]["message"] and by_line[2]["rule"] == "NoSchema"
    assert by_line[3]["statement"] == "Image = 'x'" and "Unknown match statement" in by_line[3]["message"]
    assert "Unknown operand $b" in by_line[4]["message"] and by_line[4]["rule"] == "BadCondition"
    assert any(p["line"] == 5 and "no Name" in p["message"] for p in problems)
    assert "cannot unmarshal string" in by_line[6]["message"]
    assert "duplicate rule name (also rule 1)" in by_line[7]["message"]
    assert all(p["file"] == "<request>" for p in problems)
    assert {p["line"] for p in problems} == {2, 3, 4, 5, 6, 7}, (
        "every bad rule is reported, the good one is not"
    )
    assert admin.rules() == before, "nothing stored, not even the good rule"
    with live.agent() as agent:
        assert all(b'"Good"' not in line for line in agent.get("/rules").content.splitlines())


def _upload(agent: httpx.Client, **fields: object) -> httpx.Response:
    content = base64.b64encode(b"data").decode()
    upload = {
        "filename": "f.bin",
        "guid": GUID,
        "event-hash": EHASH,
        "content": content,
        "chunk": 1,
        "total": 1,
    }
    upload.update(fields)
    return agent.post("/upload/dumps", content=orjson.dumps(upload))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("filename", "../../../../tmp/evil"),
        ("filename", "/etc/passwd"),
        ("filename", "a/b"),
        ("filename", "a\\b"),
        ("filename", ".."),
        ("filename", ".hidden"),
        ("filename", ""),
        ("guid", "../../x"),
        ("guid", "{515cd0d1-c09c-615c-6886-000000008b00}/../.."),
        ("event-hash", "../" + EHASH),
        ("event-hash", "zz" * 20),
        ("chunk", 0),
        ("chunk", 3),
        ("content", "***not base64***"),
    ],
)
def test_upload_names_that_escape_are_refused(
    agent: httpx.Client, live: LiveManager, field: str, value: object
) -> None:
    before = sorted(p for p in live.config.data_dir.rglob("*"))
    response = _upload(agent, **{field: value})
    assert response.status_code == 400, response.text
    assert response.json()["error"]
    assert sorted(p for p in live.config.data_dir.rglob("*") if "manager.db" not in p.name) == [
        p for p in before if "manager.db" not in p.name
    ]


def test_upload_with_missing_chunk_is_refused_then_completes(
    agent: httpx.Client, admin: AdminClient, live: LiveManager
) -> None:
    first = _upload(agent, filename="parts.bin", chunk=1, total=3, content=base64.b64encode(b"A").decode())
    assert first.status_code == 200
    last = _upload(agent, filename="parts.bin", chunk=3, total=3, content=base64.b64encode(b"C").decode())
    assert last.status_code == 400 and "missing chunk(s) [2]" in last.json()["error"]
    assert (
        _upload(
            agent, filename="parts.bin", chunk=2, total=3, content=base64.b64encode(b"B").decode()
        ).status_code
        == 200
    )
    assert (
        _upload(
            agent, filename="parts.bin", chunk=3, total=3, content=base64.b64encode(b"C").decode()
        ).status_code
        == 200
    )
    assert admin.artifact(live.endpoint_uuid, GUID, EHASH, "parts.bin") == b"ABC"


@pytest.mark.parametrize(
    "path",
    [
        "/endpoints/{uuid}/artifacts/515cd0d1-c09c-615c-6886-000000008b00/{ehash}/..%2F..%2Fmanager.db",
        "/endpoints/{uuid}/artifacts/515cd0d1-c09c-615c-6886-000000008b00/{ehash}/%2Fetc%2Fpasswd",
        "/endpoints/{uuid}/artifacts/..%2F..%2F..%2F/{ehash}/f.bin",
        "/endpoints/{uuid}/artifacts/515cd0d1-c09c-615c-6886-000000008b00/..%2F..%2F/f.bin",
        "/endpoints/..%2F..%2F/artifacts/515cd0d1-c09c-615c-6886-000000008b00/{ehash}/f.bin",
        "/endpoints/{uuid}/artifacts/515cd0d1-c09c-615c-6886-000000008b00/{ehash}/..",
    ],
)
def test_artifact_paths_that_escape_are_refused(live: LiveManager, path: str) -> None:
    url = live.admin_url + path.format(uuid=live.endpoint_uuid, ehash=EHASH)
    with httpx.Client(verify=live.ssl_context, headers={"X-Api-Key": live.admin_key}) as client:
        response = client.get(url, params={"raw": "true"})
    assert response.status_code in (400, 404), response.text
    assert b"SQLite format" not in response.content and b"root:" not in response.content


def test_bad_query_values_are_400_and_name_the_field(admin: AdminClient, live: LiveManager) -> None:
    cases = [
        ({"since": "yesterday"}, "since"),
        ({"last": "10 parsecs"}, "last"),
        ({"pivot": "2026-01-01T00:00:00Z", "delta": "soon"}, "delta"),
        ({"order": "sideways"}, "order"),
    ]
    for params, field in cases:
        with pytest.raises(APIError) as err:
            admin.request("GET", f"/endpoints/{live.endpoint_uuid}/logs", params=params)
        assert err.value.status == 400 and field in err.value.error
    with pytest.raises(APIError) as err:
        admin.request("GET", "/endpoints/not-a-uuid")
    assert err.value.status == 400 and "uuid" in err.value.error
    with pytest.raises(APIError) as err:
        admin.request("GET", "/endpoints", params={"showkey": "maybe"})
    assert err.value.status == 400 and "showkey" in err.value.error
    with pytest.raises(APIError) as err:
        admin.request("POST", "/iocs", content=b"{not json")
    assert err.value.status == 400 and "JSON" in err.value.error
    with pytest.raises(APIError) as err:
        admin.request("GET", "/rules", params={"name": "(unclosed"})
    assert err.value.status == 400 and "regex" in err.value.error


def test_duplicate_events_in_one_batch_are_stored_once(
    agent: httpx.Client, admin: AdminClient, live: LiveManager
) -> None:
    event = make_event(7, time="2026-03-01T00:00:00Z", hash_="ab" * 20)
    data = agent.post("/logs", content=ndjson([event, event, event]), headers=GZIP).json()["data"]
    assert (data["stored"], data["duplicates"]) == (1, 2)
    assert (
        len(admin.logs(live.endpoint_uuid, since="2026-03-01T00:00:00Z", until="2026-03-01T00:00:01Z")) == 1
    )
