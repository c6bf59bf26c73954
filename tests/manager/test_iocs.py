from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from vigil.manager.errors import BadRequest
from vigil.manager.iocs import IocCache, normalize_ioc
from vigil.manager.store import SQLiteStore

U = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def ioc(**fields: str) -> dict[str, str]:
    return {"uuid": U, "guuid": U, "source": "misp", "value": "evil.com", "type": "domain", **fields}


def test_transform_lowercases_like_whids() -> None:
    out = normalize_ioc(ioc(uuid=U.upper(), type="SHA1", value="A" * 40), 0)
    assert out["uuid"] == U and out["type"] == "sha1" and out["value"] == "a" * 40


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"uuid": "nope"}, "iocs[3].uuid"),
        ({"guuid": ""}, "iocs[3].guuid"),
        ({"source": ""}, "iocs[3].source"),
        ({"type": "url"}, "iocs[3].type"),
        ({"type": "md5", "value": "abc"}, "iocs[3].value"),
        ({"type": "sha256", "value": "x" * 64}, "iocs[3].value"),
    ],
)
def test_invalid_iocs_name_the_item_and_field(fields: dict[str, str], where: str) -> None:
    with pytest.raises(BadRequest) as err:
        normalize_ioc(ioc(**fields), 3)
    assert err.value.field == where


def test_served_values_and_hash(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "m.db", sync_full=False)
    try:
        store.upsert_iocs(
            [ioc(uuid=f"aaaaaaaa-bbbb-cccc-dddd-00000000000{i}", value=v) for i, v in enumerate("abca")]
        )
        cache = IocCache(store)
        assert cache.values == ["a", "b", "c"]
        assert cache.sha256 == hashlib.sha256(b"abc").hexdigest()
        store.delete_iocs({"value": "a"})
        cache.reload()
        assert cache.values == ["b", "c"] and cache.sha256 == hashlib.sha256(b"bc").hexdigest()
    finally:
        store.close()
