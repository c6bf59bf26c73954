"""Request body schemas for the OpenAPI documents (handlers read raw bodies, so FastAPI cannot infer
them). Field names are WHIDS' JSON names."""

from __future__ import annotations

from typing import Any

__all__ = ["body"]

_UUID = {"type": "string", "format": "uuid"}
_STRINGS = {"type": "array", "items": {"type": "string"}}

USER = {
    "type": "object",
    "required": ["identifier"],
    "properties": {
        "identifier": {"type": "string"},
        "uuid": _UUID,
        "key": {"type": "string"},
        "group": {"type": "string"},
        "description": {"type": "string"},
    },
}
USER_UPDATE = {
    "type": "object",
    "properties": {k: {"type": "string"} for k in ("key", "group", "description")},
}
ENDPOINT_UPDATE = {
    "type": "object",
    "properties": {
        "status": {"type": "string"},
        "group": {"type": "string"},
        "criticality": {"type": "integer", "minimum": 0, "maximum": 10},
    },
}
COMMAND = {
    "type": "object",
    "required": ["command-line"],
    "properties": {
        "command-line": {"type": "string"},
        "fetch-files": _STRINGS,
        "drop-files": _STRINGS,
        "timeout": {"type": "integer", "minimum": 0, "description": "nanoseconds; 0 = none"},
    },
}
IOCS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "uuid": _UUID,
            "guuid": _UUID,
            "source": {"type": "string"},
            "value": {"type": "string"},
            "type": {"enum": ["md5", "sha1", "sha256", "imphash", "domain", "hostname", "ip-dst"]},
        },
    },
}
RULES = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["Name"],
        "properties": {
            "Name": {"type": "string"},
            "Tags": _STRINGS,
            "Meta": {"type": "object"},
            "Matches": _STRINGS,
            "Condition": {"type": "string"},
            "Actions": _STRINGS,
        },
    },
}
SIGMA_YAML = {
    "type": "string",
    "description": "Sigma rules as YAML: one document or several separated by --- lines (rules and "
    "correlation rules, each with its id and title)",
}
OBJECT = {"type": "object"}
FILE_UPLOAD = {
    "type": "object",
    "required": ["filename", "guid", "event-hash", "content", "chunk", "total"],
    "properties": {
        "filename": {"type": "string"},
        "guid": {"type": "string", "description": "{process GUID} with braces"},
        "event-hash": {"type": "string"},
        "content": {"type": "string", "format": "byte"},
        "chunk": {"type": "integer", "minimum": 1},
        "total": {"type": "integer", "minimum": 1},
    },
}
NDJSON = {"type": "string", "description": "one WHIDS event JSON per line; gzip with Content-Encoding: gzip"}
XML = {"type": "string", "description": "Sysmon XML configuration (or its JSON model with format=json)"}
BINARY = {"type": "string", "format": "binary"}


def body(schema: dict[str, Any], media: str = "application/json", required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` declaring the request body of a route."""
    return {"requestBody": {"required": required, "content": {media: {"schema": schema}}}}
