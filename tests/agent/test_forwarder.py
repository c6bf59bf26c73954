from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from tests.agent.tls_server import LogSink, TLSServer, start_tls_server
from vigil.agent.forwarder import Forwarder
from vigil.agent.link.client import EndpointClient, Fatal, ManagerAddress
from vigil.agent.link.tls import spki_fingerprint
from vigil.agent.spool import Spool


def _fingerprint(cert: Path) -> str:
    import ssl

    return spki_fingerprint(ssl.PEM_cert_to_DER_cert(cert.read_text()))


def _client(server: TLSServer, fingerprint: str | None = None) -> EndpointClient:
    address = ManagerAddress(
        url=server.url,
        uuid="5a8f2b8e-0000-4000-8000-000000000001",
        key="endpoint-key",
        fingerprint=fingerprint if fingerprint is not None else _fingerprint(server.cert),
        server_key="srv-key",
    )
    return EndpointClient(address, hostname="test-host", timeout=5)


def _events(n: int, start: int = 0) -> list[bytes]:
    return [orjson.dumps({"Event": {"EventData": {"Seq": i}}}) for i in range(start, start + n)]


def _wait(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_batches_reach_the_server_with_whids_headers(tmp_path: Path, tls_server: TLSServer) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.put(_events(1200))
    forwarder = Forwarder(spool, _client(tls_server), batch_events=500)
    forwarder.start()
    _wait(lambda: len(tls_server.sink.lines) == 1200)
    forwarder.stop()
    assert [len(b) for b in tls_server.sink.batches] == [500, 500, 200]
    assert tls_server.sink.lines == _events(1200)
    headers = tls_server.sink.headers[0]
    assert headers["X-Endpoint-Uuid"] == "5a8f2b8e-0000-4000-8000-000000000001"
    assert headers["X-Api-Key"] == "endpoint-key"
    assert headers["X-Endpoint-Hostname"] == "test-host"
    assert len(spool) == 0


def test_wrong_pin_sends_nothing(tmp_path: Path, tls_server: TLSServer) -> None:
    client = _client(tls_server, fingerprint="00" * 32)
    with pytest.raises(Fatal, match="does not match the pinned"):
        client.post_logs(_events(1))
    assert tls_server.sink.batches == []


def test_server_key_mismatch_is_fatal(tls_server: TLSServer) -> None:
    tls_server.sink.server_key = "another-key"
    with pytest.raises(Fatal, match="server key"):
        _client(tls_server).check_server()


def test_unverified_self_signed_cert_is_refused_without_a_pin(tls_server: TLSServer) -> None:
    client = _client(tls_server, fingerprint="")
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        client.post_logs(_events(1))
    assert tls_server.sink.batches == []


def test_outage_then_recovery_delivers_every_event_once(tmp_path: Path) -> None:
    """Manager refuses (503), then comes back: nothing lost, nothing sent twice."""
    sink = LogSink(fail_with=503)
    server = start_tls_server(tmp_path, sink)
    try:
        spool = Spool(tmp_path / "spool.db")
        forwarder = Forwarder(spool, _client(server), batch_events=100, backoff_min=0.05, backoff_max=0.2)
        forwarder.start()
        for i in range(5):
            spool.put(_events(100, start=i * 100))
            forwarder.notify()
        time.sleep(0.5)
        assert sink.lines == [] and len(spool) == 500 and forwarder.stats.failures > 0
        sink.fail_with = 0
        _wait(lambda: len(sink.lines) == 500)
        forwarder.stop()
        assert sink.lines == _events(500)
    finally:
        server.stop()


def test_manager_down_keeps_events_in_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.put(_events(10))
    address = ManagerAddress(url="http://127.0.0.1:9", uuid="u", key="k", verify_tls=False)
    forwarder = Forwarder(spool, EndpointClient(address, timeout=1), backoff_min=0.05, backoff_max=0.1)
    assert forwarder.flush_once() == 0
    assert len(spool) == 10
    assert "POST /logs" in forwarder.stats.last_error


def test_bad_manager_url_is_refused() -> None:
    with pytest.raises(ValueError, match="scheme must be http or https"):
        EndpointClient(ManagerAddress(url="ftp://x", uuid="u", key="k"))
