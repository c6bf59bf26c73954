from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from vigil.manager.artifacts import ArtifactStore, check_filename, normalize_guid
from vigil.manager.errors import BadRequest, NotFound, TooLarge

EP = "3a6eecd2-d8bd-4ca6-8fcd-e48b130086a4"
GUID = "{515CD0D1-C09C-615C-6886-000000008B00}"
EHASH = "a" * 40


def test_names() -> None:
    assert normalize_guid("515cd0d1-c09c-615c-6886-000000008b00") == "{515cd0d1-c09c-615c-6886-000000008b00}"
    assert normalize_guid(GUID) == GUID.lower()
    assert check_filename("report.json.gz") == "report.json.gz"
    for bad in ("../x", "a/b", ".x", "..", "x" * 300, "a\x00b", " x", "x\n"):
        with pytest.raises(BadRequest):
            check_filename(bad)


def test_chunks_reassemble_in_order_and_are_cleaned_up(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    upload = {"filename": "f.bin", "guid": GUID, "event_hash": EHASH}
    assert store.upload(EP, **upload, content=b"22", chunk=2, total=3)["complete"] is False
    assert store.upload(EP, **upload, content=b"1", chunk=1, total=3)["complete"] is False
    done = store.upload(EP, **upload, content=b"333", chunk=3, total=3)
    assert done == {"file": "f.bin", "chunk": 3, "total": 3, "complete": True, "size": 6}
    directory = tmp_path / EP / GUID.lower() / EHASH
    assert (directory / "f.bin").read_bytes() == b"122333"
    assert sorted(p.name for p in directory.iterdir()) == ["f.bin"], "chunk files removed"
    [group] = store.list_endpoint(EP)
    assert group["files"] == [{"name": "f.bin", "size": 6, "timestamp": group["files"][0]["timestamp"]}]
    assert store.list_all() == {EP: [group]}


def test_read_with_gunzip_and_limit(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    store.upload(
        EP, filename="d.gz", guid=GUID, event_hash=EHASH, content=gzip.compress(b"x" * 1000), chunk=1, total=1
    )
    read = {"guid": GUID, "event_hash": EHASH}
    assert store.read(EP, **read, filename="d.gz", gunzip=True, limit=10_000) == b"x" * 1000
    with pytest.raises(TooLarge):
        store.read(EP, **read, filename="d.gz", gunzip=True, limit=100)
    with pytest.raises(NotFound):
        store.read(EP, **read, filename="missing", gunzip=False, limit=100)
    store.upload(EP, filename="plain", guid=GUID, event_hash=EHASH, content=b"not gzip", chunk=1, total=1)
    with pytest.raises(BadRequest):
        store.read(EP, **read, filename="plain", gunzip=True, limit=100)


def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    store = ArtifactStore(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    (root / EP / GUID.lower()).mkdir(parents=True)
    (root / EP / GUID.lower() / EHASH).symlink_to(outside)
    with pytest.raises(BadRequest):
        store.read(EP, guid=GUID, event_hash=EHASH, filename="secret", gunzip=False, limit=10)
