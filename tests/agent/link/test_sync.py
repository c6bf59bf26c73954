from __future__ import annotations

import base64
import hashlib
import json
import ssl
import time
from pathlib import Path

import orjson
from tests.agent.tls_server import TLSServer

from vigil.agent.commands.executor import CommandExecutor
from vigil.agent.forwarder import Forwarder
from vigil.agent.link.client import EndpointClient, ManagerAddress
from vigil.agent.link.session import LinkIntervals, ManagerLink
from vigil.agent.link.sync import ConfigSync, IocSync, RuleSync, config_digest
from vigil.agent.link.tls import spki_fingerprint
from vigil.agent.link.uploader import ArtifactUploader
from vigil.agent.spool import Spool

GUID = "{6f0b6c4e-1d2a-4b3c-8d4e-5f6a7b8c9d0e}"
EHASH = "a" * 40


def _client(server: TLSServer) -> EndpointClient:
    der = ssl.PEM_cert_to_DER_cert(server.cert.read_text())
    address = ManagerAddress(url=server.url, uuid="u-1", key="k-1", fingerprint=spki_fingerprint(der))
    return EndpointClient(address, hostname="h", timeout=5)


def _serve_rules(server: TLSServer, body: bytes, announced: str | None = None) -> None:
    server.sink.routes["/rules"] = (200, body)
    server.sink.routes["/rules/sha256"] = (200, (announced or hashlib.sha256(body).hexdigest()).encode())


def test_rules_are_downloaded_verified_and_applied_once(tmp_path: Path, tls_server: TLSServer) -> None:
    body = b'{"Name":"R1"}\n'
    _serve_rules(tls_server, body)
    applied: list[int] = []
    sync = RuleSync(_client(tls_server), tmp_path, validate=lambda b: [], apply=lambda: applied.append(1))
    assert sync.run_once() is True
    assert (tmp_path / "database.gen").read_bytes() == body
    assert sync.run_once() is False  # same sha256: nothing downloaded or applied again
    assert applied == [1]


def test_invalid_rule_set_keeps_the_old_one(tmp_path: Path, tls_server: TLSServer) -> None:
    (tmp_path / "database.gen").write_bytes(b"old rules")
    _serve_rules(tls_server, b"broken rules")
    applied: list[int] = []
    sync = RuleSync(
        _client(tls_server),
        tmp_path,
        validate=lambda b: ["line 1: bad rule"],
        apply=lambda: applied.append(1),
    )
    assert sync.run_once() is False
    assert (tmp_path / "database.gen").read_bytes() == b"old rules"
    assert "bad rule" in sync.state.last_error and applied == []


def test_tampered_rules_body_is_refused(tmp_path: Path, tls_server: TLSServer) -> None:
    _serve_rules(tls_server, b"rules", announced="0" * 64)
    sync = RuleSync(_client(tls_server), tmp_path, validate=lambda b: [], apply=lambda: None)
    assert sync.run_once() is False
    assert "differs from the announced" in sync.state.last_error
    assert not (tmp_path / "database.gen").exists()


def test_iocs_sync_to_the_container_file(tmp_path: Path, tls_server: TLSServer) -> None:
    values = ["evil.example", "d41d8cd98f00b204e9800998ecf8427e"]
    tls_server.sink.routes["/iocs"] = (200, json.dumps(values).encode())
    tls_server.sink.routes["/iocs/sha256"] = (
        200,
        hashlib.sha256("".join(values).encode()).hexdigest().encode(),
    )
    sync = IocSync(_client(tls_server), tmp_path, apply=lambda: None)
    assert sync.run_once() is True
    assert sync.local_values() == values
    assert sync.run_once() is False


def test_config_is_pushed_when_the_manager_has_none(tmp_path: Path, tls_server: TLSServer) -> None:
    tls_server.sink.routes["/config/sha256"] = (204, b"")
    sync = ConfigSync(_client(tls_server), current=lambda: {"log-all": False}, replace=lambda c: [])
    sync.run_once()
    assert tls_server.sink.posts == [("/config", b'{"log-all":false}')]


def test_config_from_the_manager_replaces_the_local_one(tls_server: TLSServer) -> None:
    remote = {"criticality-treshold": 3}
    tls_server.sink.routes["/config/sha256"] = (200, config_digest(remote).encode())
    tls_server.sink.routes["/config"] = (200, orjson.dumps(remote))
    replaced: list[dict] = []
    sync = ConfigSync(
        _client(tls_server),
        current=lambda: {"criticality-treshold": 5},
        replace=lambda c: replaced.append(c) or [],
    )
    assert sync.run_once() is True
    assert replaced == [remote]


def test_artifacts_upload_in_chunks_and_are_deleted(tmp_path: Path, tls_server: TLSServer) -> None:
    artifact_dir = tmp_path / "dumps" / GUID / EHASH
    artifact_dir.mkdir(parents=True)
    payload = bytes(range(256)) * 30000  # 7.3 MiB: three chunks
    (artifact_dir / "core.gz").write_bytes(payload)
    (artifact_dir / ".core.gz.tmp").write_bytes(b"still being written")
    uploader = ArtifactUploader(_client(tls_server), tmp_path / "dumps")
    assert uploader.run_once() == 1
    chunks = [orjson.loads(body) for path, body in tls_server.sink.posts if path == "/upload/dumps"]
    assert [c["chunk"] for c in chunks] == [1, 2, 3] and {c["total"] for c in chunks} == {3}
    assert {(c["guid"], c["event-hash"], c["filename"]) for c in chunks} == {(GUID, EHASH, "core.gz")}
    assert b"".join(base64.b64decode(c["content"]) for c in chunks) == payload
    assert not (artifact_dir / "core.gz").exists()
    assert (artifact_dir / ".core.gz.tmp").exists()


def test_oversized_artifacts_are_deleted_unsent(tmp_path: Path, tls_server: TLSServer) -> None:
    artifact_dir = tmp_path / GUID / EHASH
    artifact_dir.mkdir(parents=True)
    (artifact_dir / "big.gz").write_bytes(b"x" * 2000)
    uploader = ArtifactUploader(_client(tls_server), tmp_path, max_upload_bytes=1000)
    assert uploader.run_once() == 0
    assert uploader.stats.too_large == 1 and tls_server.sink.posts == []


def test_link_runs_a_command_and_posts_its_result(tmp_path: Path, tls_server: TLSServer) -> None:
    command = {"uuid": "u-1", "name": "stat", "args": ["/"], "expect-json": False, "timeout": 0}
    tls_server.sink.routes["/commands"] = (200, orjson.dumps(command))
    client = _client(tls_server)
    link = ManagerLink(
        client=client,
        forwarder=Forwarder(Spool(tmp_path / "spool.db"), client),
        executor=CommandExecutor(),
        intervals=LinkIntervals(commands=0.1),
    )
    link.start()
    try:
        deadline = time.monotonic() + 10
        while not any(p == "/commands" for p, _ in tls_server.sink.posts):
            assert time.monotonic() < deadline, "command result never posted"
            time.sleep(0.05)
    finally:
        link.stop(drain_deadline=0.5)
    result = orjson.loads(next(b for p, b in tls_server.sink.posts if p == "/commands"))
    assert result["completed"] is True and result["error"] == ""
    assert result["json"]["type"] == "dir"
