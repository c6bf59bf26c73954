"""The admin client: envelopes unwrapped, errors translated, certificate pinning enforced."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import orjson
import pytest

from vigil.client import AdminClient, APIError, TransportError
from vigil.manager.testing import LiveManager
from vigil.manager.tls import generate_self_signed


def _mock(status: int, payload: object) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["X-Api-Key"] == "k"
        return httpx.Response(status, content=orjson.dumps(payload))

    return httpx.MockTransport(handler)


def test_data_is_unwrapped() -> None:
    with AdminClient(
        "https://m", "k", transport=_mock(200, {"data": {"rule-count": 3}, "message": "OK", "error": ""})
    ) as c:
        assert c.stats() == {"rule-count": 3}


def test_errors_keep_status_message_and_data() -> None:
    body = {"data": [{"line": 1}], "message": "NOK", "error": "1 rule error(s)"}
    with AdminClient("https://m", "k", transport=_mock(400, body)) as c, pytest.raises(APIError) as err:
        c.add_rules([{"Name": "x"}])
    assert (err.value.status, err.value.error, err.value.data) == (400, "1 rule error(s)", [{"line": 1}])


def test_whids_style_errors_with_200_are_errors_too() -> None:
    body = {"data": None, "message": "NOK", "error": "boom"}
    with AdminClient("https://m", "k", transport=_mock(200, body)) as c, pytest.raises(APIError):
        c.users()


def test_non_json_answers_are_reported() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(502, text="<html>bad gateway</html>"))
    with AdminClient("https://m", "k", transport=transport) as c, pytest.raises(APIError) as err:
        c.users()
    assert err.value.status == 502 and "bad gateway" in err.value.error


def test_query_parameters_use_whids_names() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={"data": [], "message": "OK", "error": ""})

    with AdminClient("https://m", "k", transport=httpx.MockTransport(handler)) as c:
        c.detections("u", last="1h", order="desc", limit=5)
        c.endpoint_config("u", toml=True)
        c.rules(filters=True)
    assert dict(seen[0].params) == {"last": "1h", "order": "desc", "limit": "5"}
    assert dict(seen[1].params) == {"format": "toml"}
    assert dict(seen[2].params) == {"filters": "true"}


def test_pinning_refuses_another_certificate(tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    generate_self_signed(other, tmp_path / "other.key")
    with LiveManager(tmp_path / "m") as live:
        with live.admin() as good:
            assert good.stats()["endpoint-count"] == 1
        with (
            AdminClient(
                live.admin_url, live.admin_key, verify=ssl.create_default_context(cafile=str(other))
            ) as bad,
            pytest.raises(TransportError) as err,
        ):
            bad.stats()
        assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)
