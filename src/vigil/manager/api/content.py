"""Admin API content routes: artifacts, IoCs, rules, Sysmon configs and tool binaries
(WHIDS spec §2.7-2.10)."""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any

import orjson
import re2
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from vigil.manager.api import schemas
from vigil.manager.api.admin import Admin, check_uuid, json_body
from vigil.manager.api.common import ok, parse_bool
from vigil.manager.api.endpoint import tool_json
from vigil.manager.artifacts import check_event_hash, check_filename, normalize_guid
from vigil.manager.errors import BadRequest, NotFound, RuleRejected
from vigil.manager.iocs import IOC_FIELDS, normalize_ioc
from vigil.manager.keys import new_uuid
from vigil.manager.rules import compile_errors
from vigil.manager.sigma_rules import SIGMA_UNAVAILABLE, check_sigma_delete, check_sigma_upload
from vigil.manager.state import Manager
from vigil.manager.sysmon import SYSMON_OS, config_from_json, config_from_xml, config_to_xml
from vigil.manager.times import parse_rfc3339

__all__ = ["router"]

logger = logging.getLogger(__name__)
router = APIRouter()


def _m(request: Request) -> Manager:
    manager: Manager = request.app.state.manager
    return manager


# -- artifacts -------------------------------------------------------------------------------------


def _since(value: str | None) -> int:
    return parse_rfc3339(value, "since") if value else 0


@router.get("/endpoints/artifacts", summary="Artifacts of every endpoint", tags=["Artifacts"])
def list_all_artifacts(request: Request, admin: Admin, since: str | None = None) -> Response:
    return ok(_m(request).artifacts.list_all(_since(since)))


@router.get("/endpoints/{uuid}/artifacts", summary="Artifacts of one endpoint", tags=["Artifacts"])
def list_artifacts(request: Request, admin: Admin, uuid: str, since: str | None = None) -> Response:
    return ok(_m(request).artifacts.list_endpoint(check_uuid(uuid), _since(since)))


@router.get(
    "/endpoints/{uuid}/artifacts/{pguid}/{ehash}/{fname}", summary="Download an artifact", tags=["Artifacts"]
)
def get_artifact(
    request: Request,
    admin: Admin,
    *,
    uuid: str,
    pguid: str,
    ehash: str,
    fname: str,
    raw: str | None = None,
    gunzip: str | None = None,
) -> Response:
    manager = _m(request)
    data = manager.artifacts.read(
        check_uuid(uuid),
        guid=normalize_guid(pguid),
        event_hash=check_event_hash(ehash),
        filename=check_filename(fname),
        gunzip=parse_bool(gunzip, "gunzip"),
        limit=manager.config.max_body_bytes,
    )
    if parse_bool(raw, "raw"):
        return Response(data, media_type="application/octet-stream")
    return ok(base64.b64encode(data).decode())


# -- IoCs ------------------------------------------------------------------------------------------


def _ioc_params(request: Request) -> dict[str, str]:
    return {k: request.query_params[k] for k in IOC_FIELDS if request.query_params.get(k) is not None}


@router.get("/iocs", summary="IoCs matching any given field (all if none)", tags=["IoCs"])
def get_iocs(
    request: Request,
    admin: Admin,
    *,
    uuid: str | None = None,
    guuid: str | None = None,
    source: str | None = None,
    value: str | None = None,
    type: str | None = None,
) -> Response:
    return ok(_m(request).store.list_iocs(_ioc_params(request)))


@router.post(
    "/iocs",
    summary="Add or update IoCs (upsert by uuid); all are validated first",
    tags=["IoCs"],
    openapi_extra=schemas.body(schemas.IOCS),
)
async def post_iocs(request: Request, admin: Admin) -> Response:
    body = await json_body(request)
    if not isinstance(body, list):
        raise BadRequest("body must be a list of IoCs", field="body")
    iocs = [normalize_ioc(item, i) for i, item in enumerate(body)]
    manager = _m(request)
    await run_in_threadpool(manager.store.upsert_iocs, iocs)
    await run_in_threadpool(manager.iocs.reload)
    return ok(iocs)


@router.delete("/iocs", summary="Delete IoCs matching every given field (nothing if none)", tags=["IoCs"])
def delete_iocs(
    request: Request,
    admin: Admin,
    *,
    uuid: str | None = None,
    guuid: str | None = None,
    source: str | None = None,
    value: str | None = None,
    type: str | None = None,
) -> Response:
    params = _ioc_params(request)
    if not params:
        return ok(None)
    manager = _m(request)
    deleted = manager.store.delete_iocs(params)
    manager.iocs.reload()
    return ok(deleted)


# -- rules -----------------------------------------------------------------------------------------


@router.get(
    "/rules", summary="Rules whose name matches a regex; filters=true for filter rules only", tags=["Rules"]
)
def get_rules(
    request: Request, admin: Admin, name: str | None = None, filters: str | None = None
) -> Response:
    only_filters = parse_bool(filters, "filters")
    try:
        pattern = re2.compile(name or ".*")
    except re2.error as exc:
        raise BadRequest(f"name: invalid regex: {exc}", field="name") from exc
    out = []
    for rule_name, rule in _m(request).rules.rules.items():
        if not pattern.search(rule_name):
            continue
        if only_filters and not (rule.get("Meta") or {}).get("Filter"):
            continue
        out.append(rule)
    return ok(out)


def _store_gene(manager: Manager, body: list[Any], replace: bool) -> None:
    with manager.rules.write_lock:  # Sigma titles are checked and stored under the same lock
        errors = compile_errors(body, "<request>", set(manager.rules.sigma.info))
        if errors:
            raise RuleRejected(errors)
        rows = [{"name": rule["Name"], "body": orjson.dumps(rule).decode()} for rule in body]
        manager.store.put_rules(rows, replace)
        manager.rules.reload()


@router.post(
    "/rules",
    summary="Add rules; every rule is compiled first and all errors are returned",
    tags=["Rules"],
    openapi_extra=schemas.body(schemas.RULES),
)
async def post_rules(request: Request, admin: Admin, update: str | None = None) -> Response:
    replace = parse_bool(update, "update")
    body = await json_body(request)
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list) or not body:
        raise BadRequest("body must be a non-empty list of Gene rules", field="body")
    await run_in_threadpool(_store_gene, _m(request), body, replace)
    return ok(body)


@router.delete("/rules", summary="Delete the rule with this exact name", tags=["Rules"])
def delete_rules(request: Request, admin: Admin, name: str | None = None) -> Response:
    if not name:
        raise BadRequest("name is required", field="name")
    manager = _m(request)
    deleted = manager.store.delete_rules(name)
    manager.rules.reload()
    return ok([orjson.loads(r["body"]) for r in deleted])


# -- Sigma rules (vigil extension) ----------------------------------------------------------------


def _sigma_ready(manager: Manager) -> None:
    if not manager.rules.sigma.available:
        raise BadRequest(SIGMA_UNAVAILABLE, field="rules")


@router.get(
    "/rules/sigma",
    summary="Sigma rules (vigil): all, the one with this exact id, or those whose title matches a regex",
    tags=["Rules"],
)
def get_sigma_rules(
    request: Request, admin: Admin, id: str | None = None, title: str | None = None
) -> Response:
    try:
        pattern = re2.compile(title or ".*")
    except re2.error as exc:
        raise BadRequest(f"title: invalid regex: {exc}", field="title") from exc
    entries = _m(request).rules.sigma.entries
    if id is not None:
        if id not in entries:
            raise NotFound(f"no Sigma rule with id {id!r}", field="id")
        selected = [entries[id]]
    else:
        selected = [entries[k] for k in sorted(entries)]
    return ok([e.to_json() for e in selected if pattern.search(e.title)])


def _store_sigma(manager: Manager, text: str, update: bool) -> list[dict[str, Any]]:
    cache = manager.rules.sigma
    with manager.rules.write_lock:  # validate and store against the same stored sets
        upload = check_sigma_upload(text, cache.texts, set(manager.rules.rules), update=update)
        if upload.errors:
            raise RuleRejected(upload.errors)
        rows = [{"id": d.rule_id, "title": d.title, "kind": d.kind, "body": d.text} for d in upload.documents]
        manager.store.put_sigma_rules(rows)
        manager.rules.reload_sigma()
        entries = manager.rules.sigma.entries
        return [entries[str(d.rule_id)].to_json() for d in upload.documents]


@router.post(
    "/rules/sigma",
    summary="Add Sigma rules (vigil; YAML body); the whole resulting set is compiled first and all "
    "errors are returned, nothing stored",
    tags=["Rules"],
    openapi_extra=schemas.body(schemas.SIGMA_YAML, media="application/yaml"),
)
async def post_sigma_rules(request: Request, admin: Admin, update: str | None = None) -> Response:
    replace = parse_bool(update, "update")
    manager = _m(request)
    _sigma_ready(manager)
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not UTF-8 text: {exc}", field="body") from exc
    return ok(await run_in_threadpool(_store_sigma, manager, text, replace))


def _delete_sigma(manager: Manager, rule_id: str) -> list[dict[str, Any]]:
    cache = manager.rules.sigma
    with manager.rules.write_lock:
        if rule_id not in cache.texts:
            raise NotFound(f"no Sigma rule with id {rule_id!r}", field="id")
        errors = check_sigma_delete(rule_id, cache.texts, set(manager.rules.rules))
        if errors:
            raise RuleRejected(errors)
        entry = cache.entries[rule_id].to_json()
        manager.store.delete_sigma_rule(rule_id)
        manager.rules.reload_sigma()
        return [entry]


@router.delete(
    "/rules/sigma",
    summary="Delete the Sigma rule with this id (vigil); refused while a correlation rule uses it",
    tags=["Rules"],
)
async def delete_sigma_rules(request: Request, admin: Admin, id: str | None = None) -> Response:
    if not id:
        raise BadRequest("id is required", field="id")
    manager = _m(request)
    _sigma_ready(manager)
    return ok(await run_in_threadpool(_delete_sigma, manager, id))


# -- Sysmon configuration and tools ----------------------------------------------------------------


def _os(os: str) -> str:
    if os not in SYSMON_OS:
        raise BadRequest(f"os must be one of {', '.join(SYSMON_OS)}", field="os")
    return os


@router.get(
    "/endpoints/{os}/sysmon/config", summary="Sysmon configuration (JSON model, or XML)", tags=["Sysmon"]
)
def get_sysmon_config(
    request: Request,
    admin: Admin,
    *,
    os: str,
    version: str | None = None,
    format: str | None = None,
    raw: str | None = None,
) -> Response:
    row = _m(request).store.get_sysmon_config(_os(os), version)
    if row is None:
        raise NotFound(f"no Sysmon configuration for {os} {version or ''}".strip(), field="version")
    if (format or "json").lower() == "xml":
        if parse_bool(raw, "raw"):
            return Response(row["xml"], media_type="application/xml")
        return ok(row["xml"])
    return ok(orjson.loads(row["config"]))


@router.post(
    "/endpoints/{os}/sysmon/config",
    summary="Store a Sysmon configuration (XML or JSON body)",
    tags=["Sysmon"],
    openapi_extra=schemas.body(schemas.XML, media="application/xml"),
)
async def post_sysmon_config(request: Request, admin: Admin, os: str, format: str | None = None) -> Response:
    body = await request.body()
    fmt = (format or "xml").lower()
    if fmt == "xml":
        try:
            text = body.decode()
        except UnicodeDecodeError as exc:
            raise BadRequest("Sysmon XML must be UTF-8", field="body") from exc
        config = config_from_xml(text, _os(os))
    elif fmt == "json":
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"invalid JSON: {exc}", field="body") from exc
        config = config_from_json(data, _os(os))
    else:
        raise BadRequest("format must be xml or json", field="format")

    row = {
        "os": os,
        "version": config["schemaversion"],
        "xml": config_to_xml(config),
        "config": orjson.dumps(config).decode(),
        "sha256": config["XmlSha256"],
    }
    await run_in_threadpool(_m(request).store.put_sysmon_config, row)
    return ok(config)


@router.delete("/endpoints/{os}/sysmon/config", summary="Delete a Sysmon configuration", tags=["Sysmon"])
def delete_sysmon_config(request: Request, admin: Admin, os: str, version: str | None = None) -> Response:
    row = _m(request).store.delete_sysmon_config(_os(os), version)
    if row is None:
        raise NotFound("no such Sysmon configuration", field="version")
    return ok(orjson.loads(row["config"]))


def _tool_routes(tool: str) -> None:
    path = f"/endpoints/{{os}}/{tool}/binary"

    def get_tool(request: Request, admin: Admin, os: str, binary: str | None = None) -> Response:
        row = _m(request).store.get_tool(_os(os), tool)
        if row is None:
            raise NotFound(f"no {tool} binary for {os}", field="os")
        return ok(tool_json(row, parse_bool(binary, "binary")))

    async def post_tool(request: Request, admin: Admin, os: str, binary: str | None = None) -> Response:
        data = await request.body()
        if not data:
            raise BadRequest("binary body must not be empty", field="body")
        row = {
            "os": _os(os),
            "name": tool,
            "uuid": new_uuid(),
            "alias": tool,
            "md5": hashlib.md5(data).hexdigest(),  # noqa: S324 - WHIDS metadata, not security
            "sha1": hashlib.sha1(data).hexdigest(),  # noqa: S324
            "sha256": hashlib.sha256(data).hexdigest(),
            "sha512": hashlib.sha512(data).hexdigest(),
            "binary": data,
        }
        stored = await run_in_threadpool(_m(request).store.put_tool, row)
        return ok(tool_json(stored, parse_bool(binary, "binary")))

    def delete_tool(request: Request, admin: Admin, os: str, binary: str | None = None) -> Response:
        row = _m(request).store.delete_tool(_os(os), tool)
        if row is None:
            raise NotFound(f"no {tool} binary for {os}", field="os")
        return ok(tool_json(row, parse_bool(binary, "binary")))

    tags: list[str | Any] = ["Tools"]
    router.add_api_route(
        path, get_tool, methods=["GET"], summary=f"The {tool} binary", tags=tags, name=f"get_{tool}_binary"
    )
    router.add_api_route(
        path,
        post_tool,
        openapi_extra=schemas.body(schemas.BINARY, media="application/octet-stream"),
        methods=["POST"],
        summary=f"Upload the {tool} binary (raw body)",
        tags=tags,
        name=f"post_{tool}_binary",
    )
    router.add_api_route(
        path,
        delete_tool,
        methods=["DELETE"],
        summary=f"Delete the {tool} binary",
        tags=tags,
        name=f"delete_{tool}_binary",
    )


_tool_routes("sysmon")
_tool_routes("osqueryi")
