"""A typed, synchronous client of the whole manager admin API (WHIDS paths and JSON)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from vigil.client.errors import APIError, TransportError

__all__ = ["AdminClient", "pinned_ssl_context"]

JSON = Any


def pinned_ssl_context(cert: Path | str) -> ssl.SSLContext:
    """Trust exactly the manager's self-signed certificate (hostname checked against its names)."""
    return ssl.create_default_context(cafile=str(cert))


def _params(**values: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out["format" if key == "format_" else key] = text
    return out


class AdminClient:
    """``AdminClient("https://localhost:1520", key, verify=pinned_ssl_context(cert))``.

    Every method returns the ``data`` of the envelope and raises :class:`APIError` on an error.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        verify: ssl.SSLContext | bool | str = True,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"X-Api-Key": key},
            verify=verify,
            timeout=timeout,
            transport=transport,
            trust_env=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: JSON = None,
        content: bytes | str | None = None,
        raw: bool = False,
    ) -> Any:
        """One call; ``raw`` returns the body bytes instead of the envelope's data."""
        body = content
        headers = {}
        if json is not None:
            body = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        try:
            response = self._http.request(method, path, params=params, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise TransportError(f"{method} {path}: {exc}") from exc
        if raw and response.status_code == 200:
            return response.content
        try:
            payload = response.json()
        except ValueError as exc:
            raise APIError(response.status_code, f"not a JSON envelope: {response.text[:200]}") from exc
        if response.status_code != 200 or payload.get("error"):
            raise APIError(response.status_code, payload.get("error", ""), payload.get("data"))
        return payload.get("data")

    # -- users -------------------------------------------------------------------------------------

    def users(self) -> list[dict[str, Any]]:
        return self.request("GET", "/users")  # type: ignore[no-any-return]

    def create_user(
        self, identifier: str, *, uuid: str = "", key: str = "", group: str = "", description: str = ""
    ) -> dict[str, Any]:
        body = {
            "identifier": identifier,
            "uuid": uuid,
            "key": key,
            "group": group,
            "description": description,
        }
        return self.request("POST", "/users", json=body)  # type: ignore[no-any-return]

    def new_user(self, identifier: str) -> dict[str, Any]:
        """``PUT /users?identifier=``: create with generated uuid and key."""
        return self.request("PUT", "/users", params={"identifier": identifier})  # type: ignore[no-any-return]

    def user(self, uuid: str) -> dict[str, Any]:
        return self.request("GET", f"/users/{uuid}")  # type: ignore[no-any-return]

    def update_user(
        self, uuid: str, *, group: str = "", description: str = "", key: str = "", newkey: bool = False
    ) -> dict[str, Any]:
        body = {"group": group, "description": description, "key": key}
        return self.request("POST", f"/users/{uuid}", params=_params(newkey=newkey), json=body)  # type: ignore[no-any-return]

    def delete_user(self, uuid: str) -> dict[str, Any]:
        return self.request("DELETE", f"/users/{uuid}")  # type: ignore[no-any-return]

    # -- endpoints ---------------------------------------------------------------------------------

    def endpoints(
        self, *, group: str | None = None, status: str | None = None, criticality: int | None = None
    ) -> list[dict[str, Any]]:
        params = _params(group=group, status=status, criticality=criticality)
        return self.request("GET", "/endpoints", params=params)  # type: ignore[no-any-return]

    def new_endpoint(self) -> dict[str, Any]:
        return self.request("PUT", "/endpoints")  # type: ignore[no-any-return]

    def endpoint(self, uuid: str) -> dict[str, Any]:
        return self.request("GET", f"/endpoints/{uuid}")  # type: ignore[no-any-return]

    def update_endpoint(
        self,
        uuid: str,
        *,
        status: str | None = None,
        group: str | None = None,
        criticality: int | None = None,
        newkey: bool = False,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if status is not None:
            body["status"] = status
        if group is not None:
            body["group"] = group
        if criticality is not None:
            body["criticality"] = criticality
        return self.request("POST", f"/endpoints/{uuid}", params=_params(newkey=newkey), json=body)  # type: ignore[no-any-return]

    def delete_endpoint(self, uuid: str) -> dict[str, Any]:
        return self.request("DELETE", f"/endpoints/{uuid}")  # type: ignore[no-any-return]

    # -- endpoint configuration ---------------------------------------------------------------------

    def endpoint_config(self, uuid: str, *, toml: bool = False) -> Any:
        return self.request(
            "GET", f"/endpoints/{uuid}/config", params=_params(format_="toml" if toml else "json")
        )

    def set_endpoint_config(self, uuid: str, config: Mapping[str, Any] | str) -> Any:
        if isinstance(config, str):
            return self.request(
                "POST", f"/endpoints/{uuid}/config", params={"format": "toml"}, content=config
            )
        return self.request("POST", f"/endpoints/{uuid}/config", params={"format": "json"}, json=dict(config))

    def delete_endpoint_config(self, uuid: str) -> None:
        self.request("DELETE", f"/endpoints/{uuid}/config")

    # -- commands ----------------------------------------------------------------------------------

    def send_command(
        self,
        uuid: str,
        command_line: str,
        *,
        fetch_files: Sequence[str] = (),
        drop_files: Sequence[str] = (),
        timeout_ns: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "command-line": command_line,
            "fetch-files": list(fetch_files),
            "drop-files": list(drop_files),
        }
        if timeout_ns is not None:
            body["timeout"] = timeout_ns
        return self.request("POST", f"/endpoints/{uuid}/command", json=body)  # type: ignore[no-any-return]

    def command(self, uuid: str, *, wait: bool = False) -> dict[str, Any]:
        return self.request("GET", f"/endpoints/{uuid}/command", params=_params(wait=wait))  # type: ignore[no-any-return]

    def command_field(self, uuid: str, field: str) -> Any:
        return self.request("GET", f"/endpoints/{uuid}/command/{field}")

    # -- logs, detections, reports -------------------------------------------------------------------

    def _search(self, uuid: str, kind: str, **query: Any) -> list[dict[str, Any]]:
        return self.request("GET", f"/endpoints/{uuid}/{kind}", params=_params(**query))  # type: ignore[no-any-return]

    def logs(
        self,
        uuid: str,
        *,
        since: str | None = None,
        until: str | None = None,
        last: str | None = None,
        pivot: str | None = None,
        delta: str | None = None,
        limit: int | None = None,
        skip: int | None = None,
        order: str | None = None,
    ) -> list[dict[str, Any]]:
        return self._search(
            uuid,
            "logs",
            since=since,
            until=until,
            last=last,
            pivot=pivot,
            delta=delta,
            limit=limit,
            skip=skip,
            order=order,
        )

    def detections(
        self,
        uuid: str,
        *,
        since: str | None = None,
        until: str | None = None,
        last: str | None = None,
        pivot: str | None = None,
        delta: str | None = None,
        limit: int | None = None,
        skip: int | None = None,
        order: str | None = None,
    ) -> list[dict[str, Any]]:
        return self._search(
            uuid,
            "detections",
            since=since,
            until=until,
            last=last,
            pivot=pivot,
            delta=delta,
            limit=limit,
            skip=skip,
            order=order,
        )

    def reports(self) -> dict[str, dict[str, Any] | None]:
        return self.request("GET", "/endpoints/reports")  # type: ignore[no-any-return]

    def report(self, uuid: str) -> dict[str, Any] | None:
        return self.request("GET", f"/endpoints/{uuid}/report")  # type: ignore[no-any-return]

    def archive_report(self, uuid: str) -> dict[str, Any]:
        return self.request("DELETE", f"/endpoints/{uuid}/report")  # type: ignore[no-any-return]

    def report_archive(
        self,
        uuid: str,
        *,
        since: str | None = None,
        until: str | None = None,
        last: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        params = _params(since=since, until=until, last=last, limit=limit)
        return self.request("GET", f"/endpoints/{uuid}/report/archive", params=params)  # type: ignore[no-any-return]

    # -- artifacts ---------------------------------------------------------------------------------

    def all_artifacts(self, *, since: str | None = None) -> dict[str, list[dict[str, Any]]]:
        return self.request("GET", "/endpoints/artifacts", params=_params(since=since))  # type: ignore[no-any-return]

    def artifacts(self, uuid: str, *, since: str | None = None) -> list[dict[str, Any]]:
        return self.request("GET", f"/endpoints/{uuid}/artifacts", params=_params(since=since))  # type: ignore[no-any-return]

    def artifact(self, uuid: str, pguid: str, ehash: str, fname: str, *, gunzip: bool = False) -> bytes:
        path = f"/endpoints/{uuid}/artifacts/{pguid.strip('{}')}/{ehash}/{fname}"
        return self.request("GET", path, params=_params(raw=True, gunzip=gunzip), raw=True)  # type: ignore[no-any-return]

    # -- IoCs --------------------------------------------------------------------------------------

    def iocs(self, **any_of: str) -> list[dict[str, Any]]:
        """IoCs matching any of ``uuid``, ``guuid``, ``source``, ``value``, ``type`` (all if none)."""
        return self.request("GET", "/iocs", params=_params(**any_of))  # type: ignore[no-any-return]

    def add_iocs(self, iocs: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
        return self.request("POST", "/iocs", json=[dict(i) for i in iocs])  # type: ignore[no-any-return]

    def delete_iocs(self, **all_of: str) -> list[dict[str, Any]] | None:
        """Delete IoCs matching every given field; nothing is deleted without a field."""
        return self.request("DELETE", "/iocs", params=_params(**all_of))  # type: ignore[no-any-return]

    # -- rules -------------------------------------------------------------------------------------

    def rules(self, *, name: str | None = None, filters: bool = False) -> list[dict[str, Any]]:
        return self.request("GET", "/rules", params=_params(name=name, filters=filters))  # type: ignore[no-any-return]

    def add_rules(self, rules: Sequence[Mapping[str, Any]], *, update: bool = False) -> list[dict[str, Any]]:
        return self.request("POST", "/rules", params=_params(update=update), json=[dict(r) for r in rules])  # type: ignore[no-any-return]

    def delete_rule(self, name: str) -> list[dict[str, Any]]:
        return self.request("DELETE", "/rules", params={"name": name})  # type: ignore[no-any-return]

    def sigma_rules(self, *, id: str | None = None, title: str | None = None) -> list[dict[str, Any]]:
        """Stored Sigma rules (id, title, kind, level, status, logsource, criticality, techniques,
        tactics, yaml): all, the one with ``id``, or those whose title matches the regex ``title``."""
        return self.request("GET", "/rules/sigma", params=_params(id=id, title=title))  # type: ignore[no-any-return]

    def sigma_rule(self, id: str) -> dict[str, Any]:
        [rule] = self.sigma_rules(id=id)
        return rule

    def add_sigma_rules(self, yaml_text: str, *, update: bool = False) -> list[dict[str, Any]]:
        """Store the rules of a Sigma YAML text (one or several documents); ``update`` replaces
        rules whose id is stored. On any error nothing is stored and :class:`APIError` ``data``
        lists every error (document, line, id, title, kind, message)."""
        return self.request(  # type: ignore[no-any-return]
            "POST", "/rules/sigma", params=_params(update=update), content=yaml_text.encode()
        )

    def delete_sigma_rule(self, id: str) -> list[dict[str, Any]]:
        return self.request("DELETE", "/rules/sigma", params={"id": id})  # type: ignore[no-any-return]

    # -- Sysmon and tools --------------------------------------------------------------------------

    def sysmon_config(self, os: str, *, version: str | None = None, xml: bool = False) -> Any:
        params = _params(version=version, format_="xml" if xml else None)
        return self.request("GET", f"/endpoints/{os}/sysmon/config", params=params)

    def set_sysmon_config(self, os: str, config: str | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(config, str):
            return self.request(  # type: ignore[no-any-return]
                "POST", f"/endpoints/{os}/sysmon/config", params={"format": "xml"}, content=config
            )
        return self.request(  # type: ignore[no-any-return]
            "POST", f"/endpoints/{os}/sysmon/config", params={"format": "json"}, json=dict(config)
        )

    def delete_sysmon_config(self, os: str, *, version: str | None = None) -> dict[str, Any]:
        return self.request("DELETE", f"/endpoints/{os}/sysmon/config", params=_params(version=version))  # type: ignore[no-any-return]

    def tool(self, os: str, name: str, *, binary: bool = False) -> dict[str, Any]:
        return self.request("GET", f"/endpoints/{os}/{name}/binary", params=_params(binary=binary))  # type: ignore[no-any-return]

    def set_tool(self, os: str, name: str, data: bytes) -> dict[str, Any]:
        return self.request("POST", f"/endpoints/{os}/{name}/binary", content=data)  # type: ignore[no-any-return]

    def delete_tool(self, os: str, name: str) -> dict[str, Any]:
        return self.request("DELETE", f"/endpoints/{os}/{name}/binary")  # type: ignore[no-any-return]

    # -- stats -------------------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        return self.request("GET", "/stats")  # type: ignore[no-any-return]
