"""The admin API (operators, plugins, console; default port 1520): users, endpoints, commands,
search, reports, stats and the websocket streams (WHIDS spec §2.1-2.6, 2.11, 2.12).

Rules, IoCs, artifacts and Sysmon tooling are in :mod:`vigil.manager.api.content`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import shlex
import tomllib
from pathlib import Path
from typing import Annotated, Any

import orjson
import tomli_w
from fastapi import APIRouter, Depends, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from vigil.manager.api import schemas
from vigil.manager.api.common import ok, ok_raw, parse_bool
from vigil.manager.auth import admin_user, require_admin
from vigil.manager.errors import BadRequest, ManagerError, NotFound
from vigil.manager.ingest import attach_edr_data, edr_data
from vigil.manager.keys import hash_key, new_key, new_uuid
from vigil.manager.scoring import compute_reports
from vigil.manager.search import parse_limit, parse_skip, resolve_window
from vigil.manager.state import Manager
from vigil.manager.store.base import SearchQuery
from vigil.manager.times import format_ns, now_ns

__all__ = ["json_body", "router"]

logger = logging.getLogger(__name__)

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
COMMAND_WAIT_NS = 14_000_000_000
Admin = Annotated[dict[str, Any], Depends(require_admin)]
router = APIRouter()


def _m(request: Request) -> Manager:
    manager: Manager = request.app.state.manager
    return manager


def check_uuid(value: str, field: str = "uuid") -> str:
    if not _UUID.match(value):
        raise BadRequest(f"{field}: {value!r} is not a UUID", field=field)
    return value.lower()


async def json_body(request: Request) -> Any:
    body = await request.body()
    try:
        return orjson.loads(body or b"null")
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not JSON: {exc}", field="body") from exc


def _time(ns: int) -> str:
    return format_ns(ns) if ns else GO_ZERO_TIME


# -- users -----------------------------------------------------------------------------------------


def user_json(row: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    out = {
        "uuid": row["uuid"],
        "identifier": row["identifier"],
        "group": row["grp"],
        "description": row["description"],
    }
    if key:
        out["key"] = key
    return out


def create_user(
    manager: Manager,
    identifier: str,
    *,
    uuid: str = "",
    key: str = "",
    group: str = "",
    description: str = "",
) -> dict[str, Any]:
    if not identifier or not isinstance(identifier, str):
        raise BadRequest("identifier is required", field="identifier")
    uuid = uuid.lower() if isinstance(uuid, str) and _UUID.match(uuid) else new_uuid()
    key = key if isinstance(key, str) and key else new_key()
    row = manager.store.create_user(
        {
            "uuid": uuid,
            "identifier": identifier,
            "key_hash": hash_key(key),
            "grp": group,
            "description": description,
        }
    )
    return user_json(row, key)


@router.get("/users", summary="List admin users (keys are never returned)", tags=["Users"])
def list_users(request: Request, admin: Admin) -> Response:
    return ok([user_json(u) for u in _m(request).store.list_users()])


@router.put("/users", summary="Create a user; the generated key is returned once", tags=["Users"])
def put_user(request: Request, admin: Admin, identifier: str) -> Response:
    return ok(create_user(_m(request), identifier))


@router.post(
    "/users",
    summary="Create a user from a JSON body",
    tags=["Users"],
    openapi_extra=schemas.body(schemas.USER),
)
async def post_user(request: Request, admin: Admin) -> Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise BadRequest("body must be an object with identifier", field="body")
    fields = {k: body.get(k, "") for k in ("identifier", "uuid", "key", "group", "description")}
    if not all(isinstance(v, str) for v in fields.values()):
        raise BadRequest("user fields must be strings", field="body")
    return ok(await run_in_threadpool(create_user, _m(request), **fields))


@router.get("/users/{uuid}", summary="Get a user", tags=["Users"])
def get_user(request: Request, admin: Admin, uuid: str) -> Response:
    user = _m(request).store.get_user(check_uuid(uuid))
    if user is None:
        raise NotFound(f"user {uuid} not found", field="uuid")
    return ok(user_json(user))


@router.post(
    "/users/{uuid}",
    summary="Update a user; newkey=true rotates its key",
    tags=["Users"],
    openapi_extra=schemas.body(schemas.USER_UPDATE, required=False),
)
async def update_user(request: Request, admin: Admin, uuid: str, newkey: str | None = None) -> Response:
    uuid = check_uuid(uuid)
    body = await json_body(request) or {}
    if not isinstance(body, dict):
        raise BadRequest("body must be an object", field="body")
    changes: dict[str, Any] = {}
    key = body.get("key") or (new_key() if parse_bool(newkey, "newkey") else "")
    if key:
        if not isinstance(key, str):
            raise BadRequest("key must be a string", field="key")
        changes["key_hash"] = hash_key(key)
    for src, col in (("group", "grp"), ("description", "description")):
        if body.get(src):
            changes[col] = str(body[src])
    row = await run_in_threadpool(_m(request).store.update_user, uuid, changes)
    return ok(user_json(row, key or None))


@router.delete("/users/{uuid}", summary="Delete a user", tags=["Users"])
def delete_user(request: Request, admin: Admin, uuid: str) -> Response:
    return ok(user_json(_m(request).store.delete_user(check_uuid(uuid))))


# -- endpoints -------------------------------------------------------------------------------------


def endpoint_json(
    row: dict[str, Any], score: float, key: str | None = None, full: bool = True
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "uuid": row["uuid"],
        "hostname": row["hostname"],
        "ip": row["ip"],
        "group": row["grp"],
        "criticality": row["criticality"],
        "score": score,
        "status": row["status"],
        "last-event": _time(row["last_event"]),
        "last-detection": _time(row["last_detection"]),
        "last-connection": _time(row["last_connection"]),
    }
    if key:
        out["key"] = key
    if row.get("system_info") is not None:
        out["system-info"] = row["system_info"]
    if full:
        if row.get("config") is not None:
            out["config"] = row["config"]
        if row.get("command") is not None:
            out["command"] = row["command"]
    return out


def _scores(manager: Manager) -> dict[str, float]:
    return {u: r["bounded-score"] for u, r in compute_reports(manager.store.report_states()).items()}


def get_endpoint_row(manager: Manager, uuid: str) -> dict[str, Any]:
    row = manager.store.get_endpoint(check_uuid(uuid))
    if row is None:
        raise NotFound(f"endpoint {uuid} not found", field="uuid")
    return row


def create_endpoint(manager: Manager) -> dict[str, Any]:
    key = new_key()
    row = manager.store.create_endpoint({"uuid": new_uuid(), "key_hash": hash_key(key)})
    return endpoint_json(row, 0.0, key)


@router.get("/endpoints", summary="List endpoints", tags=["Endpoints"])
def list_endpoints(
    request: Request,
    admin: Admin,
    *,
    group: str | None = None,
    status: str | None = None,
    criticality: int | None = None,
    showkey: str | None = None,
) -> Response:
    parse_bool(showkey, "showkey")
    manager = _m(request)
    scores = _scores(manager)
    out = []
    for row in manager.store.list_endpoints():
        if group is not None and row["grp"] != group:
            continue
        if status is not None and row["status"] != status:
            continue
        if criticality is not None and row["criticality"] < criticality:
            continue
        out.append(endpoint_json(row, scores.get(row["uuid"], 0.0), full=False))
    return ok(out)


@router.put("/endpoints", summary="Enroll a new endpoint; its key is returned once", tags=["Endpoints"])
def put_endpoint(request: Request, admin: Admin) -> Response:
    return ok(create_endpoint(_m(request)))


@router.get("/endpoints/reports", summary="Detection reports of every endpoint", tags=["Reports"])
def get_reports(request: Request, admin: Admin) -> Response:
    manager = _m(request)
    reports = compute_reports(manager.store.report_states())
    return ok({row["uuid"]: reports.get(row["uuid"]) for row in manager.store.list_endpoints()})


@router.get("/endpoints/{uuid}", summary="Get an endpoint", tags=["Endpoints"])
def get_endpoint(request: Request, admin: Admin, uuid: str, showkey: str | None = None) -> Response:
    parse_bool(showkey, "showkey")
    manager = _m(request)
    row = get_endpoint_row(manager, uuid)
    return ok(endpoint_json(row, _scores(manager).get(row["uuid"], 0.0)))


@router.post(
    "/endpoints/{uuid}",
    summary="Update status, group or criticality; newkey=true rotates the key",
    tags=["Endpoints"],
    openapi_extra=schemas.body(schemas.ENDPOINT_UPDATE, required=False),
)
async def update_endpoint(
    request: Request, admin: Admin, uuid: str, newkey: str | None = None, showkey: str | None = None
) -> Response:
    manager = _m(request)
    uuid = check_uuid(uuid)
    parse_bool(showkey, "showkey")
    body = await json_body(request) or {}
    if not isinstance(body, dict):
        raise BadRequest("body must be an object", field="body")
    changes: dict[str, Any] = {}
    if body.get("status"):
        changes["status"] = str(body["status"])
    if body.get("group"):
        changes["grp"] = str(body["group"])
    if "criticality" in body:
        crit = body["criticality"]
        if not isinstance(crit, int) or isinstance(crit, bool) or not 0 <= crit <= 10:
            raise BadRequest("criticality must be an integer 0-10", field="criticality")
        changes["criticality"] = crit
    key = new_key() if parse_bool(newkey, "newkey") else None
    if key:
        changes["key_hash"] = hash_key(key)
    if not changes:
        row = await run_in_threadpool(get_endpoint_row, manager, uuid)
    else:
        row = await run_in_threadpool(manager.store.update_endpoint, uuid, changes)
    return ok(endpoint_json(row, _scores(manager).get(uuid, 0.0), key))


@router.delete("/endpoints/{uuid}", summary="Delete an endpoint", tags=["Endpoints"])
def delete_endpoint(request: Request, admin: Admin, uuid: str, showkey: str | None = None) -> Response:
    parse_bool(showkey, "showkey")
    row = _m(request).store.delete_endpoint(check_uuid(uuid))
    return ok(endpoint_json(row, 0.0))


# -- endpoint configuration ------------------------------------------------------------------------


def _format(value: str | None) -> str:
    fmt = (value or "json").lower()
    if fmt not in ("json", "toml"):
        raise BadRequest("format must be json or toml", field="format")
    return fmt


@router.get(
    "/endpoints/{uuid}/config",
    summary="Agent configuration (JSON object or TOML string)",
    tags=["Endpoint configuration"],
)
def get_endpoint_config(request: Request, admin: Admin, uuid: str, format: str | None = None) -> Response:
    fmt = _format(format)
    config = get_endpoint_row(_m(request), uuid).get("config")
    if config is None or fmt == "json":
        return ok(config)
    return ok(tomli_w.dumps(config))


@router.post(
    "/endpoints/{uuid}/config",
    summary="Store the agent configuration (JSON or TOML body)",
    tags=["Endpoint configuration"],
    openapi_extra=schemas.body(schemas.OBJECT),
)
async def post_endpoint_config(
    request: Request, admin: Admin, uuid: str, format: str | None = None
) -> Response:
    fmt = _format(format)
    body = await request.body()
    try:
        config = tomllib.loads(body.decode()) if fmt == "toml" else orjson.loads(body)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, orjson.JSONDecodeError) as exc:
        raise BadRequest(f"invalid {fmt} configuration: {exc}", field="body") from exc
    if not isinstance(config, dict):
        raise BadRequest("configuration must be an object", field="body")
    manager = _m(request)
    await run_in_threadpool(get_endpoint_row, manager, uuid)
    row = await run_in_threadpool(manager.store.update_endpoint, uuid.lower(), {"config": config})
    return ok(row["config"] if fmt == "json" else tomli_w.dumps(row["config"]))


@router.delete(
    "/endpoints/{uuid}/config",
    summary="Forget the configuration (the agent pushes its own)",
    tags=["Endpoint configuration"],
)
def delete_endpoint_config(request: Request, admin: Admin, uuid: str, format: str | None = None) -> Response:
    _format(format)
    manager = _m(request)
    get_endpoint_row(manager, uuid)
    manager.store.update_endpoint(uuid.lower(), {"config": None})
    return ok(None)


# -- commands --------------------------------------------------------------------------------------


def build_command(manager: Manager, body: dict[str, Any]) -> dict[str, Any]:
    line = body.get("command-line")
    if not isinstance(line, str) or not line.strip():
        raise BadRequest("command-line is required", field="command-line")
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise BadRequest(f"command-line: {exc}", field="command-line") from exc
    timeout = body.get("timeout", 15_000_000_000)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0:
        raise BadRequest("timeout must be a non-negative integer (nanoseconds)", field="timeout")
    fetch_files = body.get("fetch-files") or []
    drop_files = body.get("drop-files") or []
    if not isinstance(fetch_files, list) or not all(isinstance(f, str) for f in fetch_files):
        raise BadRequest("fetch-files must be a list of paths", field="fetch-files")
    if not isinstance(drop_files, list) or not all(isinstance(f, str) for f in drop_files):
        raise BadRequest("drop-files must be a list of file names", field="drop-files")
    drop_root = Path(manager.drop_dir).resolve()
    drops = []
    for name in drop_files:
        path = (drop_root / name).resolve()
        if not path.is_relative_to(drop_root) or not path.is_file():
            raise BadRequest(f"drop-files: {name!r} is not a file under {drop_root}", field="drop-files")
        drops.append(
            {
                "uuid": new_uuid(),
                "name": path.name,
                "data": base64.b64encode(path.read_bytes()).decode(),
                "error": "",
            }
        )
    return {
        "uuid": new_uuid(),
        "name": argv[0],
        "args": argv[1:],
        "drop": drops,
        "fetch": {path: {"name": path, "data": None, "error": ""} for path in fetch_files},
        "json": None,
        "stdout": None,
        "stderr": None,
        "error": "",
        "sent": False,
        "background": False,
        "completed": False,
        "expect-json": False,
        "timeout": timeout,
        "sent-time": GO_ZERO_TIME,
    }


@router.post(
    "/endpoints/{uuid}/command",
    summary="Queue a command for the endpoint (replaces any pending one)",
    tags=["Commands"],
    openapi_extra=schemas.body(schemas.COMMAND),
)
async def post_command(request: Request, admin: Admin, uuid: str) -> Response:
    manager = _m(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise BadRequest("body must be a CommandAPI object", field="body")
    await run_in_threadpool(get_endpoint_row, manager, uuid)
    command = await run_in_threadpool(build_command, manager, body)
    row = await run_in_threadpool(manager.store.update_endpoint, uuid.lower(), {"command": command})
    return ok(endpoint_json(row, _scores(manager).get(row["uuid"], 0.0)))


@router.get(
    "/endpoints/{uuid}/command",
    summary="The endpoint's command; wait=true waits for completion",
    tags=["Commands"],
)
async def get_command(request: Request, admin: Admin, uuid: str, wait: str | None = None) -> Response:
    manager = _m(request)
    waiting = parse_bool(wait, "wait")
    deadline = now_ns() + COMMAND_WAIT_NS
    while True:
        row = await run_in_threadpool(get_endpoint_row, manager, uuid)
        command = row.get("command")
        if command is None:
            raise NotFound("no command for this endpoint", field="command")
        if not waiting or command.get("completed") or now_ns() >= deadline:
            return ok(command)
        await asyncio.sleep(0.05)


_COMMAND_FIELDS = {
    "stdout": "stdout",
    "stderr": "stderr",
    "error": "error",
    "completed": "completed",
    "files": "fetch",
    "fetch": "fetch",
}


@router.get("/endpoints/{uuid}/command/{field}", summary="One field of the command result", tags=["Commands"])
def get_command_field(
    request: Request, admin: Admin, uuid: str, field: str, wait: str | None = None
) -> Response:
    if field not in _COMMAND_FIELDS:
        raise BadRequest(f"field must be one of {', '.join(_COMMAND_FIELDS)}", field="field")
    command = get_endpoint_row(_m(request), uuid).get("command")
    if command is None:
        raise NotFound("no command for this endpoint", field="command")
    return ok(command.get(_COMMAND_FIELDS[field]))


# -- logs and detections ---------------------------------------------------------------------------


def _search(manager: Manager, uuid: str, detections: bool, params: dict[str, str | None]) -> Response:
    uuid = check_uuid(uuid)
    order = (params.get("order") or "asc").lower()
    if order not in ("asc", "desc"):
        raise BadRequest("order must be asc or desc", field="order")
    window = resolve_window(
        now_ns(),
        since=params.get("since"),
        until=params.get("until"),
        last=params.get("last"),
        pivot=params.get("pivot"),
        delta=params.get("delta"),
    )
    query = SearchQuery(
        uuid,
        window.start,
        window.stop,
        detections,
        parse_limit(params.get("limit")),
        parse_skip(params.get("skip")),
        order == "desc",
    )
    rows = manager.store.search(query)
    endpoint = manager.store.get_endpoint(uuid) or {"uuid": uuid}
    parts = [
        attach_edr_data(r["body"], edr_data(endpoint, r["hash"], bool(r["detection"]), r["receipt"]))
        for r in rows
    ]
    return ok_raw(b"[" + b",".join(parts) + b"]")


_SEARCH_KEYS = ("since", "until", "last", "pivot", "delta", "limit", "skip", "order")


@router.get("/endpoints/{uuid}/logs", summary="Search the endpoint's events", tags=["Logs"])
def get_logs(
    request: Request,
    admin: Admin,
    *,
    uuid: str,
    since: str | None = None,
    until: str | None = None,
    last: str | None = None,
    pivot: str | None = None,
    delta: str | None = None,
    limit: str | None = None,
    skip: str | None = None,
    order: str | None = None,
) -> Response:
    return _search(_m(request), uuid, False, {k: request.query_params.get(k) for k in _SEARCH_KEYS})


@router.get("/endpoints/{uuid}/detections", summary="Search the endpoint's detections", tags=["Logs"])
def get_detections(
    request: Request,
    admin: Admin,
    *,
    uuid: str,
    since: str | None = None,
    until: str | None = None,
    last: str | None = None,
    pivot: str | None = None,
    delta: str | None = None,
    limit: str | None = None,
    skip: str | None = None,
    order: str | None = None,
) -> Response:
    return _search(_m(request), uuid, True, {k: request.query_params.get(k) for k in _SEARCH_KEYS})


# -- reports ---------------------------------------------------------------------------------------


@router.get("/endpoints/{uuid}/report", summary="Detection report of one endpoint", tags=["Reports"])
def get_report(request: Request, admin: Admin, uuid: str) -> Response:
    return ok(compute_reports(_m(request).store.report_states()).get(check_uuid(uuid)))


@router.delete(
    "/endpoints/{uuid}/report", summary="Archive then clear the endpoint's report", tags=["Reports"]
)
def delete_report(request: Request, admin: Admin, uuid: str) -> Response:
    manager = _m(request)
    uuid = check_uuid(uuid)
    report = compute_reports(manager.store.report_states()).get(uuid)
    when = now_ns()
    if report is None or not manager.store.archive_report(
        uuid, {**report, "archived-time": format_ns(when)}, when
    ):
        raise NotFound("No report to delete", field="uuid")
    return ok(report)


@router.get("/endpoints/{uuid}/report/archive", summary="Archived reports, newest first", tags=["Reports"])
def get_report_archive(
    request: Request,
    admin: Admin,
    *,
    uuid: str,
    since: str | None = None,
    until: str | None = None,
    last: str | None = None,
    limit: str | None = None,
) -> Response:
    window = resolve_window(now_ns(), since=since, until=until, last=last, default=24 * 3_600_000_000_000)
    rows = _m(request).store.archived_reports(
        check_uuid(uuid), window.start, window.stop, parse_limit(limit, default=1000, maximum=10_000)
    )
    return ok([r["report"] for r in rows])


# -- stats and streams -----------------------------------------------------------------------------


@router.get("/stats", summary="Endpoint and rule counts", tags=["Stats"])
def get_stats(request: Request, admin: Admin) -> Response:
    stats = _m(request).store.stats()
    return ok({"endpoint-count": stats.get("endpoints", 0), "rule-count": stats.get("rules", 0)})


async def _stream(websocket: WebSocket, detections_only: bool) -> None:
    manager: Manager = websocket.app.state.manager
    try:
        await run_in_threadpool(admin_user, websocket, True)
    except ManagerError:
        await websocket.close(code=1008)
        return
    await websocket.accept()
    sub = manager.hub.subscribe(detections_only)

    async def watch_close() -> None:
        try:
            while True:
                await websocket.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            await sub.queue.put(None)

    watcher = asyncio.create_task(watch_close())
    try:
        while True:
            payload = await sub.queue.get()
            if payload is None:
                break
            await websocket.send_text(payload.decode())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        manager.hub.unsubscribe(sub)
        watcher.cancel()
        try:
            await websocket.close()
        except RuntimeError:
            pass


@router.websocket("/stream/events")
async def stream_events(websocket: WebSocket) -> None:
    await _stream(websocket, False)


@router.websocket("/stream/detections")
async def stream_detections(websocket: WebSocket) -> None:
    await _stream(websocket, True)
