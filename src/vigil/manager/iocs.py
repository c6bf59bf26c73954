"""Indicators of compromise (WHIDS ``ioc.IOC``): normalization, validation and the served set."""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Any

from vigil.manager.errors import BadRequest
from vigil.manager.store.base import Store

__all__ = ["IOC_FIELDS", "IOC_TYPES", "IocCache", "normalize_ioc"]

IOC_FIELDS = ("uuid", "guuid", "source", "value", "type")
IOC_TYPES = ("md5", "sha1", "sha256", "imphash", "domain", "hostname", "ip-dst")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_HEX_LEN = {"md5": 32, "imphash": 32, "sha1": 40, "sha256": 64}


def normalize_ioc(item: Any, index: int) -> dict[str, str]:
    """WHIDS ``Transform()`` then ``Validate()``, with anchored patterns; errors name the item."""
    where = f"iocs[{index}]"
    if not isinstance(item, dict):
        raise BadRequest(f"{where}: must be an object", field=where)
    ioc: dict[str, str] = {}
    for key in IOC_FIELDS:
        value = item.get(key, "")
        if not isinstance(value, str):
            raise BadRequest(f"{where}.{key}: must be a string", field=f"{where}.{key}")
        ioc[key] = value.strip()
    ioc["uuid"] = ioc["uuid"].lower()
    ioc["guuid"] = ioc["guuid"].lower()
    ioc["type"] = ioc["type"].lower()
    for key in ("uuid", "guuid"):
        if not _UUID.match(ioc[key]):
            raise BadRequest(f"{where}.{key}: {ioc[key]!r} is not a UUID", field=f"{where}.{key}")
    for key in ("source", "value"):
        if not ioc[key]:
            raise BadRequest(f"{where}.{key}: must not be empty", field=f"{where}.{key}")
    if ioc["type"] not in IOC_TYPES:
        raise BadRequest(
            f"{where}.type: {ioc['type']!r} not in {', '.join(IOC_TYPES)}", field=f"{where}.type"
        )
    length = _HEX_LEN.get(ioc["type"])
    if length is not None:
        ioc["value"] = ioc["value"].lower()
        if not re.fullmatch(f"[0-9a-f]{{{length}}}", ioc["value"]):
            raise BadRequest(
                f"{where}.value: {ioc['type']} needs {length} hex digits", field=f"{where}.value"
            )
    return ioc


class IocCache:
    """Served IoC values (deduplicated, insertion order) and the sha256 of their concatenation."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self.reload()

    def reload(self) -> None:
        values = list(dict.fromkeys(self._store.ioc_values()))
        digest = hashlib.sha256("".join(values).encode()).hexdigest()
        with self._lock:
            self.values = values
            self.sha256 = digest
