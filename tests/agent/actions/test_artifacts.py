"""ArtifactStore: gzip + sha256 + JSON sidecar, never outside the dump directory."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from vigil.agent.actions.artifacts import ArtifactStore, event_hash, safe_name
from vigil.agent.actions.errors import InvalidInput

EVENT = {
    "Event": {"System": {"Channel": "Linux-Sysmon/Operational", "EventID": 1}, "EventData": {"Image": "/x"}}
}


def test_artifact_is_gzipped_hashed_and_described(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    d = store.event_dir(GUID, EVENT)
    art = store.write_bytes(d, "evidence.txt", b"hello world", "file", {"pid": 7})
    path = Path(art.path)
    assert path.name == "evidence.txt.gz" and path.parent == d
    assert gzip.decompress(path.read_bytes()) == b"hello world"
    assert art.sha256 == hashlib.sha256(b"hello world").hexdigest()
    assert art.stored_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    sidecar = json.loads(path.with_name("evidence.txt.gz.json").read_text())
    assert sidecar["sha256"] == art.sha256 and sidecar["kind"] == "file" and sidecar["meta"]["pid"] == 7
    assert sidecar["size"] == 11 and sidecar["compressed"] is True
    assert not list(d.glob("*.part"))


GUID = "{5a1d0c3e-0000-4000-8000-000000001234}"


def test_layout_is_guid_then_event_hash(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    assert store.event_dir(GUID, EVENT) == (tmp_path / GUID / event_hash(EVENT)).resolve()


@pytest.mark.parametrize("guid", ["", "pid-12", "../../etc", "{not-a-guid}"])
def test_missing_or_bad_guid_becomes_the_zero_guid(tmp_path: Path, guid: str) -> None:
    d = ArtifactStore(tmp_path).event_dir(guid, EVENT)
    assert d.parent.name == "{00000000-0000-0000-0000-000000000000}" and d.parent.parent == tmp_path.resolve()


def test_store_layout_is_what_the_uploader_ships(tmp_path: Path) -> None:
    from vigil.agent.link.uploader import ArtifactUploader

    store = ArtifactStore(tmp_path)
    store.write_bytes(store.event_dir(GUID, EVENT), "x.bin", b"x", "file")
    pending = ArtifactUploader(None, tmp_path).pending()  # type: ignore[arg-type]
    assert {(g, h, f.name) for g, h, f in pending} == {
        (GUID, event_hash(EVENT), "x.bin.gz"),
        (GUID, event_hash(EVENT), "x.bin.gz.json"),
    }


def test_event_hash_ignores_edrdata_and_key_order() -> None:
    with_edr = {
        "Event": {"EventData": {"Image": "/x"}, "System": EVENT["Event"]["System"], "EdrData": {"a": 1}}
    }
    assert event_hash(with_edr) == event_hash(EVENT)
    assert event_hash({"Event": {"EventData": {"Image": "/y"}}}) != event_hash(EVENT)


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/etc/shadow", "..", "a/../../b", ".hidden", "c:stream"]
)
def test_names_cannot_escape(tmp_path: Path, name: str) -> None:
    store = ArtifactStore(tmp_path / "dumps")
    d = store.event_dir("g", EVENT)
    art = store.write_bytes(d, name, b"x", "file")
    assert Path(art.path).parent == d
    assert "/" not in safe_name(name) and not safe_name(name).startswith(".")


def test_directory_outside_root_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "dumps")
    with pytest.raises(InvalidInput, match="escapes the dump directory"):
        store.write_bytes(tmp_path, "x", b"x", "file")
    assert not (tmp_path / "x.gz").exists()


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    d = store.event_dir("g", EVENT)
    with pytest.raises(RuntimeError), store.writer(d, "broken", "file") as w:
        w.write(b"partial")
        raise RuntimeError("boom")
    assert list(d.iterdir()) == []


def test_uncompressed_mode(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, compress=False)
    art = store.write_bytes(store.event_dir("g", EVENT), "raw.bin", b"abc", "file")
    assert Path(art.path).read_bytes() == b"abc" and art.name == "raw.bin"
