"""The endpoint API (agents, default port 1519): the 16 operations of WHIDS spec §3, and the Sigma rule
set (``/rules/sigma``, ``/rules/sigma/sha256``: vigil extensions the agent syncs like ``/rules``)."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from vigil.manager.api import schemas
from vigil.manager.api.common import ok, parse_bool
from vigil.manager.auth import require_endpoint
from vigil.manager.errors import BadRequest, Forbidden
from vigil.manager.ingest import attach_edr_data, edr_data
from vigil.manager.state import Manager
from vigil.manager.times import now_ns

__all__ = ["router"]

logger = logging.getLogger(__name__)

Endpoint = Annotated[dict[str, Any], Depends(require_endpoint)]
router = APIRouter()


def _m(request: Request) -> Manager:
    manager: Manager = request.app.state.manager
    return manager


async def _json_body(request: Request) -> Any:
    body = await request.body()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not JSON: {exc}", field="body") from exc


def _text(body: str | bytes, status: int = 200, media: str = "text/plain") -> Response:
    return Response(body, status_code=status, media_type=media)


@router.get("/key", summary="Server key (liveness probe)")
async def get_key(request: Request, endpoint: Endpoint) -> Response:
    return _text(_m(request).config.server_key)


@router.get("/rules", summary="All rules, one JSON object a line, sorted by name")
async def get_rules(request: Request, endpoint: Endpoint) -> Response:
    return _text(_m(request).rules.body, media="application/json")


@router.get("/rules/sha256", summary="sha256 of the GET /rules body")
async def get_rules_sha256(request: Request, endpoint: Endpoint) -> Response:
    return _text(_m(request).rules.sha256)


@router.get(
    "/rules/sigma",
    summary="Sigma rules (vigil): one YAML document per rule, each after a --- line, sorted by id",
)
async def get_sigma_rules(request: Request, endpoint: Endpoint) -> Response:
    return _text(_m(request).rules.sigma.body, media="application/yaml")


@router.get("/rules/sigma/sha256", summary="sha256 of the GET /rules/sigma body (vigil)")
async def get_sigma_rules_sha256(request: Request, endpoint: Endpoint) -> Response:
    return _text(_m(request).rules.sigma.sha256)


@router.get("/iocs", summary="IoC values (deduplicated, insertion order)")
async def get_iocs(request: Request, endpoint: Endpoint) -> Response:
    return Response(orjson.dumps(_m(request).iocs.values), media_type="application/json")


@router.get("/iocs/sha256", summary="sha256 of the concatenated IoC values")
async def get_iocs_sha256(request: Request, endpoint: Endpoint) -> Response:
    return _text(_m(request).iocs.sha256)


def _config_bytes(config: Any) -> bytes:
    return orjson.dumps(config, option=orjson.OPT_SORT_KEYS)


@router.get("/config", summary="Agent configuration (204 if none)")
async def get_config(request: Request, endpoint: Endpoint) -> Response:
    config = endpoint.get("config")
    if config is None:
        return Response(status_code=204)
    return Response(_config_bytes(config), media_type="application/json")


@router.post(
    "/config",
    summary="Push the agent's local configuration (only when the manager has none)",
    openapi_extra=schemas.body(schemas.OBJECT),
)
async def post_config(request: Request, endpoint: Endpoint) -> Response:
    config = await _json_body(request)
    if not isinstance(config, dict):
        raise BadRequest("agent configuration must be a JSON object", field="body")
    if endpoint.get("config") is not None:
        raise Forbidden("the manager already has a configuration for this endpoint")
    await run_in_threadpool(_m(request).store.update_endpoint, endpoint["uuid"], {"config": config})
    return ok(None)


@router.get("/config/sha256", summary="sha256 of the stored configuration (204 if none)")
async def get_config_sha256(request: Request, endpoint: Endpoint) -> Response:
    config = endpoint.get("config")
    if config is None:
        return Response(status_code=204)
    return _text(hashlib.sha256(_config_bytes(config)).hexdigest())


def _sysmon(request: Request, os_name: str, version: str | None) -> dict[str, Any] | None:
    row = _m(request).store.get_sysmon_config(os_name, version or None)
    if row is None:
        return None
    config: dict[str, Any] = orjson.loads(row["config"])
    return config


@router.get("/sysmon/config", summary="Sysmon configuration for an OS and schema version (204 if none)")
def get_sysmon_config(
    request: Request, endpoint: Endpoint, os: str = "windows", version: str | None = None
) -> Response:
    config = _sysmon(request, os, version)
    if config is None:
        return Response(status_code=204)
    return Response(orjson.dumps(config), media_type="application/json")


@router.get("/sysmon/config/sha256", summary="XmlSha256 of that configuration (204 if none)")
def get_sysmon_config_sha256(
    request: Request, endpoint: Endpoint, os: str = "windows", version: str | None = None
) -> Response:
    config = _sysmon(request, os, version)
    if config is None:
        return Response(status_code=204)
    return _text(str(config.get("XmlSha256", "")))


def tool_json(row: dict[str, Any], with_binary: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "uuid": row["uuid"],
        "os": row["os"],
        "name": row["name"],
        "alias": row["alias"],
        "metadata": {k: row[k] for k in ("md5", "sha1", "sha256", "sha512")},
    }
    if with_binary:
        out["binary"] = base64.b64encode(row["binary"]).decode()
    return out


_HASH_BY_LEN = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}


@router.get("/tools", summary="Tools (sysmon, osqueryi) for an OS, optionally filtered by hash")
def get_tools(
    request: Request,
    endpoint: Endpoint,
    os: str = "windows",
    hash: str | None = None,
    binary: str | None = None,
) -> Response:
    with_binary = parse_bool(binary, "binary")
    out = {}
    for row in _m(request).store.list_tools(os):
        if hash:
            algo = _HASH_BY_LEN.get(len(hash))
            if algo is None or row[algo] != hash.lower():
                continue
        out[row["name"]] = tool_json(row, with_binary)
    return Response(orjson.dumps(out), media_type="application/json")


@router.get("/commands", summary="The pending command, marked sent (204 if none)")
async def get_commands(request: Request, endpoint: Endpoint) -> Response:
    command = endpoint.get("command")
    if command is None or command.get("sent"):  # the common case: nothing pending, no write
        return Response(status_code=204)
    command = await run_in_threadpool(_m(request).store.take_command, endpoint["uuid"], now_ns())
    if command is None:
        return Response(status_code=204)
    return Response(orjson.dumps(command), media_type="application/json")


@router.post(
    "/commands", summary="Result of the executed command", openapi_extra=schemas.body(schemas.OBJECT)
)
async def post_commands(request: Request, endpoint: Endpoint) -> Response:
    result = await _json_body(request)
    if not isinstance(result, dict):
        raise BadRequest("command result must be a JSON object", field="body")
    done = await run_in_threadpool(_m(request).store.complete_command, endpoint["uuid"], result)
    return ok({"completed": done})


@router.post(
    "/logs",
    summary="Ingest NDJSON events (gzip accepted); malformed lines are skipped and counted",
    openapi_extra=schemas.body(schemas.NDJSON, media="application/x-ndjson"),
)
async def post_logs_async(request: Request, endpoint: Endpoint) -> Response:
    body = await request.body()
    gzipped = request.headers.get("content-encoding", "").strip().lower() == "gzip"  # see BodyGuard
    return await run_in_threadpool(_ingest, _m(request), endpoint, body, gzipped)


def _ingest(manager: Manager, endpoint: dict[str, Any], body: bytes, gzipped: bool) -> Response:
    receipt = now_ns()
    batch = manager.parsers.parse(body, receipt, gzipped=gzipped)
    events = batch.events
    result = manager.store.ingest(endpoint["uuid"], events, manager.rules.info)
    if manager.hub.active and len(events):
        edr_endpoint = {**endpoint}
        manager.hub.publish(
            [
                (
                    attach_edr_data(
                        row.body, edr_data(edr_endpoint, row.hash, bool(row.signatures), receipt)
                    ),
                    bool(row.signatures),
                )
                for row in batch.rows
            ]
        )
    return ok(
        {
            "received": len(events) + batch.malformed,
            "stored": result.stored,
            "duplicates": result.duplicates,
            "detections": result.detections,
            "malformed": batch.malformed,
            "malformed-lines": batch.malformed_lines,
        }
    )


@router.post(
    "/upload/dumps",
    summary="Upload one chunk of an artifact",
    openapi_extra=schemas.body(schemas.FILE_UPLOAD),
)
async def post_upload(request: Request, endpoint: Endpoint) -> Response:
    upload = await _json_body(request)
    if not isinstance(upload, dict):
        raise BadRequest("upload must be a JSON object", field="body")
    try:
        content = base64.b64decode(upload.get("content") or "", validate=True)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise BadRequest(f"content is not base64: {exc}", field="content") from exc
    chunk, total = upload.get("chunk", 1), upload.get("total", 1)
    if not isinstance(chunk, int) or not isinstance(total, int) or isinstance(chunk, bool):
        raise BadRequest("chunk and total must be integers", field="chunk")
    written = await run_in_threadpool(
        functools.partial(
            _m(request).artifacts.upload,
            endpoint["uuid"],
            filename=upload.get("filename", ""),
            guid=upload.get("guid", ""),
            event_hash=upload.get("event-hash", ""),
            content=content,
            chunk=chunk,
            total=total,
        )
    )
    return ok(written)


@router.post(
    "/info/system", summary="System information of the endpoint", openapi_extra=schemas.body(schemas.OBJECT)
)
async def post_system_info(request: Request, endpoint: Endpoint) -> Response:
    info = await _json_body(request)
    if not isinstance(info, dict):
        raise BadRequest("system info must be a JSON object", field="body")
    await run_in_threadpool(_m(request).store.update_endpoint, endpoint["uuid"], {"system_info": info})
    return ok(None)
