"""Sysmon configurations served to agents, keyed by (os, schema version).

The XML is parsed into the WHIDS JSON model (``schemaversion``, top-level settings, and
``EventFiltering`` with ``RuleGroup`` and event-type filters) and validated; ``XmlSha256`` is the
sha256 of the XML re-serialized from that model, so agents compare configs by content.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from typing import Any

from vigil.manager.errors import BadRequest

__all__ = ["SYSMON_OS", "config_from_json", "config_from_xml", "config_to_xml"]

SYSMON_OS = ("windows", "linux", "darwin")
_SCHEMA = re.compile(r"\d+\.\d+\Z")
_ONMATCH = ("include", "exclude")
_RELATION = ("and", "or")
_CONDITIONS = (
    "is",
    "is not",
    "is any",
    "contains",
    "contains any",
    "contains all",
    "excludes",
    "excludes any",
    "excludes all",
    "begin with",
    "not begin with",
    "end with",
    "not end with",
    "less than",
    "more than",
    "image",
)
_HASHES = ("md5", "sha1", "sha256", "imphash", "*")
_MAX_XML = 4 * 1024 * 1024


def _filter_from_xml(elem: ET.Element) -> dict[str, Any]:
    out: dict[str, Any] = {"onmatch": elem.get("onmatch", "")}
    if out["onmatch"] not in _ONMATCH:
        raise BadRequest(f"{elem.tag}: onmatch must be include or exclude", field=elem.tag)
    for child in elem:
        condition = child.get("condition", "is")
        if condition not in _CONDITIONS:
            raise BadRequest(f"{elem.tag}.{child.tag}: unknown condition {condition!r}", field=child.tag)
        out.setdefault(child.tag, []).append({"condition": condition, "value": child.text or ""})
    return out


def _add(target: dict[str, Any], key: str, value: Any) -> None:
    if key in target:
        existing = target[key]
        target[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
    else:
        target[key] = value


def config_from_xml(xml: str, os_name: str) -> dict[str, Any]:
    if os_name not in SYSMON_OS:
        raise BadRequest(f"os {os_name!r} not in {', '.join(SYSMON_OS)}", field="os")
    if len(xml) > _MAX_XML or "<!DOCTYPE" in xml or "<!ENTITY" in xml:
        raise BadRequest("Sysmon XML too large or with a DTD", field="body")
    try:
        root = ET.fromstring(xml)  # noqa: S314 - DTDs refused above
    except ET.ParseError as exc:
        raise BadRequest(f"invalid Sysmon XML: {exc}", field="body") from exc
    if root.tag != "Sysmon":
        raise BadRequest("root element must be <Sysmon>", field="body")
    config: dict[str, Any] = {"schemaversion": root.get("schemaversion", "")}
    for child in root:
        if child.tag == "EventFiltering":
            filtering: dict[str, Any] = {}
            for item in child:
                if item.tag == "RuleGroup":
                    group: dict[str, Any] = {
                        "name": item.get("name", ""),
                        "groupRelation": item.get("groupRelation", "or"),
                    }
                    if group["groupRelation"] not in _RELATION:
                        raise BadRequest("RuleGroup: groupRelation must be and/or", field="groupRelation")
                    for event in item:
                        _add(group, event.tag, _filter_from_xml(event))
                    filtering.setdefault("RuleGroup", []).append(group)
                else:
                    _add(filtering, item.tag, _filter_from_xml(item))
            config["EventFiltering"] = filtering
        else:
            config[child.tag] = (child.text or "").strip()
    return validate(config, os_name)


def validate(config: dict[str, Any], os_name: str) -> dict[str, Any]:
    if not isinstance(config.get("schemaversion"), str) or not _SCHEMA.match(config["schemaversion"]):
        raise BadRequest("schemaversion must look like 4.70", field="schemaversion")
    algos = config.get("HashAlgorithms", "")
    if algos:
        for algo in str(algos).lower().split(","):
            if algo.strip() not in _HASHES:
                raise BadRequest(f"HashAlgorithms: unknown {algo.strip()!r}", field="HashAlgorithms")
    config["OS"] = os_name
    config.pop("XmlSha256", None)
    config["XmlSha256"] = hashlib.sha256(config_to_xml(config).encode()).hexdigest()
    return config


def _filter_to_xml(parent: ET.Element, tag: str, value: Any) -> None:
    for flt in value if isinstance(value, list) else [value]:
        if not isinstance(flt, dict):
            raise BadRequest(f"{tag}: filter must be an object", field=tag)
        onmatch = flt.get("onmatch", "")
        if onmatch not in _ONMATCH:
            raise BadRequest(f"{tag}: onmatch must be include or exclude", field=tag)
        elem = ET.SubElement(parent, tag, onmatch=onmatch)
        for field_name, conds in flt.items():
            if field_name == "onmatch":
                continue
            for cond in conds if isinstance(conds, list) else [conds]:
                if not isinstance(cond, dict) or cond.get("condition", "is") not in _CONDITIONS:
                    raise BadRequest(f"{tag}.{field_name}: bad condition", field=field_name)
                sub = ET.SubElement(elem, field_name, condition=cond.get("condition", "is"))
                sub.text = str(cond.get("value", ""))


def config_to_xml(config: dict[str, Any]) -> str:
    root = ET.Element("Sysmon", schemaversion=str(config.get("schemaversion", "")))
    for key, value in config.items():
        if key in ("schemaversion", "OS", "XmlSha256"):
            continue
        if key == "EventFiltering":
            filtering = ET.SubElement(root, "EventFiltering")
            for tag, item in (value or {}).items():
                if tag == "RuleGroup":
                    for group in item:
                        elem = ET.SubElement(
                            filtering,
                            "RuleGroup",
                            name=str(group.get("name", "")),
                            groupRelation=str(group.get("groupRelation", "or")),
                        )
                        for etype, flt in group.items():
                            if etype not in ("name", "groupRelation"):
                                _filter_to_xml(elem, etype, flt)
                else:
                    _filter_to_xml(filtering, tag, item)
        else:
            ET.SubElement(root, key).text = str(value)
    return ET.tostring(root, encoding="unicode")


def config_from_json(data: Any, os_name: str) -> dict[str, Any]:
    if os_name not in SYSMON_OS:
        raise BadRequest(f"os {os_name!r} not in {', '.join(SYSMON_OS)}", field="os")
    if not isinstance(data, dict):
        raise BadRequest("Sysmon config JSON must be an object", field="body")
    if not all(re.fullmatch(r"[A-Za-z]\w*", k) for k in data):
        raise BadRequest("Sysmon config keys must be XML names", field="body")
    return validate(dict(data), os_name)
