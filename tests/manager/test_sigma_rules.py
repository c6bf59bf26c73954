"""Sigma rules on a real manager (TLS, loopback): admin routes, validation, the served set, scoring."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vigil.client import AdminClient, APIError
from vigil.manager.state import Manager
from vigil.manager.testing import GZIP, LiveManager, make_event, ndjson

EXEC_ID = "5f1f5c2a-4f9e-4a53-9d0c-1b7c6a1e0001"
CURL_ID = "5f1f5c2a-4f9e-4a53-9d0c-1b7c6a1e0002"
BURST_ID = "5f1f5c2a-4f9e-4a53-9d0c-1b7c6a1e0003"


def exec_rule(rule_id: str = EXEC_ID, title: str = "Sigma Test Exec", binary: str = "/tmp/sigma-test") -> str:
    return f"""title: {title}
id: {rule_id}
status: test
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        Image|endswith: '{binary}'
    condition: selection
level: high
tags:
    - attack.execution
    - attack.t1059.004
"""


CURL = f"""title: Sigma Test Curl
id: {CURL_ID}
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        Image|endswith: '/curl'
        CommandLine|contains|all: ['-o', 'http']
    condition: selection
level: medium
tags: [attack.command-and-control, attack.t1105]
"""

BURST = f"""title: Sigma Test Exec Burst
id: {BURST_ID}
correlation:
    type: event_count
    rules:
        - {EXEC_ID}
    group-by:
        - Computer
    timespan: 1m
    condition:
        gte: 3
level: critical
"""


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveManager]:
    with LiveManager(tmp_path / "manager") as manager:
        yield manager


@pytest.fixture
def admin(live: LiveManager) -> Iterator[AdminClient]:
    with live.admin() as client:
        yield client


def served(live: LiveManager) -> tuple[bytes, str]:
    with live.agent() as agent:
        body = agent.get("/rules/sigma")
        digest = agent.get("/rules/sigma/sha256")
    assert body.status_code == 200 and digest.status_code == 200
    return body.content, digest.text


def rejected(admin: AdminClient, text: str, *, update: bool = False) -> list[dict[str, Any]]:
    with pytest.raises(APIError) as err:
        admin.add_sigma_rules(text, update=update)
    assert err.value.status == 400
    assert "nothing was stored" in err.value.error
    assert isinstance(err.value.data, list) and err.value.data
    return err.value.data  # type: ignore[no-any-return]


def test_add_list_get_replace_delete(live: LiveManager, admin: AdminClient) -> None:
    empty_body, empty_sha = served(live)
    assert empty_body == b"" and empty_sha == hashlib.sha256(b"").hexdigest()

    stored = admin.add_sigma_rules(exec_rule() + "---\n" + CURL)
    assert [(r["id"], r["title"], r["kind"]) for r in stored] == [
        (EXEC_ID, "Sigma Test Exec", "rule"),
        (CURL_ID, "Sigma Test Curl", "rule"),
    ]
    exec_entry = admin.sigma_rule(EXEC_ID)
    assert exec_entry["level"] == "high" and exec_entry["criticality"] == 8
    assert exec_entry["techniques"] == ["T1059.004"] and exec_entry["tactics"] == ["execution"]
    assert exec_entry["logsource"] == {"product": "linux", "category": "process_creation"}
    assert exec_entry["yaml"] == exec_rule()
    assert [r["id"] for r in admin.sigma_rules()] == [EXEC_ID, CURL_ID]
    assert [r["title"] for r in admin.sigma_rules(title="Curl$")] == ["Sigma Test Curl"]

    body, digest = served(live)
    assert body == f"---\n{exec_rule()}---\n{CURL}".encode(), "sorted by id, each after a --- line"
    assert digest == hashlib.sha256(body).hexdigest()
    gene_sha = live.manager.rules.sha256
    with live.agent() as agent:
        assert agent.get("/rules").content == b"", "the Gene route serves Gene rules only"
        assert agent.get("/rules/sha256").text == gene_sha

    # Without update=true an id already stored is refused; with it the rule is replaced.
    [error] = rejected(admin, exec_rule(title="Sigma Test Exec v2"))
    assert error["kind"] == "exists" and error["id"] == EXEC_ID and "update=true" in error["message"]
    assert admin.sigma_rule(EXEC_ID)["title"] == "Sigma Test Exec"
    admin.add_sigma_rules(exec_rule(title="Sigma Test Exec v2"), update=True)
    assert admin.sigma_rule(EXEC_ID)["title"] == "Sigma Test Exec v2"
    assert served(live)[1] != digest

    deleted = admin.delete_sigma_rule(CURL_ID)
    assert [r["id"] for r in deleted] == [CURL_ID]
    assert [r["id"] for r in admin.sigma_rules()] == [EXEC_ID]
    with pytest.raises(APIError) as err:
        admin.sigma_rule(CURL_ID)
    assert err.value.status == 404
    with pytest.raises(APIError) as err:
        admin.delete_sigma_rule(CURL_ID)
    assert err.value.status == 404


def test_rules_survive_a_restart(tmp_path: Path) -> None:
    with LiveManager(tmp_path / "m") as live, live.admin() as admin:
        admin.add_sigma_rules(exec_rule())
        body, digest = served(live)
        config = live.config
    manager = Manager.open(config)  # a new process would read the same database
    try:
        assert manager.rules.sigma.body == body and manager.rules.sigma.sha256 == digest
        assert manager.rules.info["Sigma Test Exec"].criticality == 8
    finally:
        manager.close()


def test_bad_uploads_report_every_error_precisely_and_store_nothing(
    live: LiveManager, admin: AdminClient
) -> None:
    admin.add_sigma_rules(CURL)
    before = served(live)
    syntax = "title: Broken YAML\nid: 5f1f5c2a-4f9e-4a53-9d0c-1b7c6a1e0010\ndetection:\n  sel: [unclosed\n"
    modifier = exec_rule("5f1f5c2a-4f9e-4a53-9d0c-1b7c6a1e0011", "Bad Modifier").replace(
        "Image|endswith", "Image|endswiht"
    )
    condition = exec_rule("5f1f5c2a-4f9e-4a53-9d0c-1b7c6a1e0012", "Bad Condition").replace(
        "condition: selection", "condition: selection and not filter"
    )
    logsource = exec_rule("5f1f5c2a-4f9e-4a53-9d0c-1b7c6a1e0013", "Cloud Rule").replace(
        "product: linux\n    category: process_creation", "product: aws\n    service: cloudtrail"
    )
    good = exec_rule("5f1f5c2a-4f9e-4a53-9d0c-1b7c6a1e0014", "Good Rule In A Bad Upload")
    docs = [syntax, modifier, condition, logsource, good]
    text = "---\n".join(docs)
    errors = rejected(admin, text)
    by_doc = {e["document"]: e for e in errors}
    assert sorted(by_doc) == [1, 2, 3, 4], errors  # document 5 is fine; one error per bad document
    starts = [1]
    for doc in docs[:-1]:
        starts.append(starts[-1] + doc.count("\n") + 1)
    assert by_doc[1]["kind"] == "yaml" and "line 4" in by_doc[1]["message"], by_doc[1]
    assert by_doc[2] | {"message": ""} == {
        "file": "<request>",
        "document": 2,
        "line": starts[1],
        "id": "5f1f5c2a-4f9e-4a53-9d0c-1b7c6a1e0011",
        "title": "Bad Modifier",
        "rule": "Bad Modifier",
        "kind": "parse",
        "message": "",
    }
    assert "Unknown modifier 'endswiht'" in by_doc[2]["message"]
    assert by_doc[3]["kind"] == "parse" and by_doc[3]["line"] == starts[2]
    assert "'filter' not defined" in by_doc[3]["message"] and by_doc[3]["title"] == "Bad Condition"
    assert by_doc[4]["kind"] == "logsource" and by_doc[4]["title"] == "Cloud Rule"
    assert "aws" in by_doc[4]["message"] and by_doc[4]["line"] == starts[3]
    assert [r["id"] for r in admin.sigma_rules()] == [CURL_ID], "nothing stored, not even the good rule"
    assert served(live) == before

    # Each problem alone is refused too (an unsupported log source is never stored as a rule).
    for doc, kind in ((syntax, "yaml"), (modifier, "parse"), (condition, "parse"), (logsource, "logsource")):
        assert [e["kind"] for e in rejected(admin, doc)] == [kind]
    assert served(live) == before


def test_structural_errors(live: LiveManager, admin: AdminClient) -> None:
    admin.add_sigma_rules(exec_rule())
    no_id = CURL.replace(f"id: {CURL_ID}\n", "")
    errors = rejected(admin, no_id)
    assert errors[0]["kind"] == "parse" and "no id" in errors[0]["message"]
    twice = rejected(admin, CURL + "---\n" + CURL.replace("Sigma Test Curl", "Other Title"))
    assert [(e["document"], e["kind"]) for e in twice] == [(2, "exists")]
    assert "document 1" in twice[0]["message"]
    same_title = rejected(admin, CURL.replace("Sigma Test Curl", "Sigma Test Exec"))
    assert same_title[0]["kind"] == "name" and EXEC_ID in same_title[0]["message"]
    listed = rejected(admin, "- just\n- a list\n")
    assert listed[0]["kind"] == "yaml" and "not a Sigma rule" in listed[0]["message"]
    assert rejected(admin, "# only a comment\n")[0]["message"] == "the body holds no Sigma rule"
    with pytest.raises(APIError) as err:
        admin.request("POST", "/rules/sigma", content=b"title: \xff\xfe")
    assert err.value.status == 400 and "UTF-8" in err.value.error
    with pytest.raises(APIError) as err:
        admin.sigma_rules(title="(")
    assert err.value.status == 400 and "title" in err.value.error
    with pytest.raises(APIError) as err:
        admin.request("DELETE", "/rules/sigma")
    assert err.value.status == 400 and "id is required" in err.value.error
    assert [r["id"] for r in admin.sigma_rules()] == [EXEC_ID]


def test_gene_and_sigma_names_never_collide(live: LiveManager, admin: AdminClient) -> None:
    admin.add_sigma_rules(exec_rule())
    gene = {
        "Name": "Sigma Test Exec",
        "Meta": {"Schema": "2.0.0"},
        "Matches": ["$a: Image = 'x'"],
        "Condition": "$a",
    }
    with pytest.raises(APIError) as err:
        admin.add_rules([gene])
    assert err.value.status == 400 and "Sigma rule has this title" in str(err.value.data)
    admin.add_rules([gene | {"Name": "Gene Exec"}])
    errors = rejected(admin, CURL.replace("Sigma Test Curl", "Gene Exec"))
    assert errors[0]["kind"] == "name" and "Gene rule" in errors[0]["message"]


def test_correlation_rules_reference_stored_rules_and_pin_them(live: LiveManager, admin: AdminClient) -> None:
    admin.add_sigma_rules(exec_rule())
    [burst] = admin.add_sigma_rules(BURST)  # references a rule stored by an earlier upload
    assert burst["kind"] == "correlation" and burst["criticality"] == 10
    dangling = BURST.replace(BURST_ID, "5f1f5c2a-4f9e-4a53-9d0c-1b7c6a1e0020").replace(EXEC_ID, CURL_ID)
    errors = rejected(admin, dangling.replace("Sigma Test Exec Burst", "Dangling Burst"))
    assert errors[0]["document"] == 1 and errors[0]["title"] == "Dangling Burst"
    assert CURL_ID in errors[0]["message"]
    # The rule a stored correlation uses cannot be deleted, and the error names the correlation.
    with pytest.raises(APIError) as err:
        admin.delete_sigma_rule(EXEC_ID)
    assert err.value.status == 400
    [error] = err.value.data
    assert error["id"] == BURST_ID and error["file"] == "<stored>"
    admin.delete_sigma_rule(BURST_ID)
    admin.delete_sigma_rule(EXEC_ID)
    assert admin.sigma_rules() == []
    # References by rule name work too, across uploads.
    named = CURL.replace("logsource:", "name: curl_download\nlogsource:")
    admin.add_sigma_rules(named)
    by_name = BURST.replace(f"- {EXEC_ID}", "- curl_download").replace("Sigma Test Exec Burst", "Curl Burst")
    [stored] = admin.add_sigma_rules(by_name)
    assert stored["kind"] == "correlation" and stored["title"] == "Curl Burst"
    with pytest.raises(APIError) as err:
        admin.delete_sigma_rule(CURL_ID)
    assert err.value.data[0]["title"] == "Curl Burst"


def test_reports_score_sigma_detections_from_the_stored_rule(live: LiveManager, admin: AdminClient) -> None:
    admin.add_sigma_rules(exec_rule() + "---\n" + CURL)
    events = [
        make_event(i, time=f"2026-01-02T03:0{i}:00Z", channel="Linux-Sysmon/Operational") for i in range(3)
    ]
    events[0]["Event"]["Detection"] = {
        "Signature": ["Sigma Test Exec"],
        "Criticality": 8,
        "SigmaIDs": [EXEC_ID],
    }
    events[2]["Event"]["Detection"] = {
        "Signature": ["Sigma Test Curl"],
        "Criticality": 5,
        "SigmaIDs": [CURL_ID],
    }
    with live.agent() as agent:
        response = agent.post("/logs", content=ndjson(events), headers=GZIP)
    assert response.json()["data"]["detections"] == 2
    report = admin.report(live.endpoint_uuid)
    assert report is not None
    assert report["count-by-signature"] == {"Sigma Test Exec": 1, "Sigma Test Curl": 1}
    assert report["sum-rule-criticality"] == 8 + 5, "criticality of the stored rules (level high, medium)"
    assert report["techniques"] == ["T1059.004", "T1105"]
    assert report["tactics"] == ["execution", "command-and-control"]
    detections = admin.detections(
        live.endpoint_uuid, since="2026-01-02T03:00:00Z", until="2026-01-02T03:10:00Z"
    )
    assert [d["Event"]["Detection"]["SigmaIDs"] for d in detections] == [[EXEC_ID], [CURL_ID]]


def test_concurrent_uploads_never_store_two_rules_with_one_title(live: LiveManager) -> None:
    import threading

    outcomes: list[str] = []

    def upload(n: int) -> None:
        with live.admin() as client:
            try:
                client.add_sigma_rules(exec_rule(f"5f1f5c2a-4f9e-4a53-9d0c-1b7c6a1e01{n:02d}", "Raced Title"))
                outcomes.append("stored")
            except APIError as err:
                outcomes.append(err.data[0]["kind"])

    def gene(n: int) -> None:
        with live.admin() as client:
            rule = {"Name": "Raced Title", "Meta": {"Schema": "2.0.0"}, "Matches": ["$a: Image = 'x'"]}
            try:
                client.add_rules([rule | {"Condition": "$a"}], update=True)
                outcomes.append("stored")
            except APIError:
                outcomes.append("gene refused")

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(6)]
    threads += [threading.Thread(target=gene, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 8
    with live.admin() as admin:
        sigma_titles = [r["title"] for r in admin.sigma_rules()]
        gene_names = [r["Name"] for r in admin.rules()]
    assert sigma_titles.count("Raced Title") + min(gene_names.count("Raced Title"), 1) == 1, outcomes
    assert outcomes.count("stored") in (1, 2), outcomes  # one Sigma rule, or the Gene rule (twice)
