"""The dump directory: every artifact gzip-compressed, sha256-hashed, with a JSON sidecar.

Layout (as WHIDS): ``<root>/<process guid>/<event hash>/<name>.gz`` and ``<name>.gz.json``.
The event hash is the SHA-1 of the event's canonical JSON (sorted keys, ``EdrData`` removed), so
the manager can link an alert to its artifacts. Files are written to ``.part`` and renamed, so a
reader never sees half an artifact. Nothing is written outside ``root``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from vigil.agent.actions.errors import InvalidInput
from vigil.agent.spool import event_hash as spooled_event_hash
from vigil.agent.spool import serialize_event

_UNSAFE = re.compile(r"[^A-Za-z0-9._+{}-]")
_GUID = re.compile(r"^\{[0-9A-Fa-f-]{36}\}$")
ZERO_GUID = "{00000000-0000-0000-0000-000000000000}"


@dataclass(frozen=True, slots=True)
class Artifact:
    """A stored artifact; ``sha256`` is of the original bytes, ``stored_sha256`` of the .gz file."""

    path: str
    name: str
    kind: str
    size: int
    sha256: str
    stored_sha256: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def event_hash(event: Mapping[str, Any]) -> str:
    """SHA-1 hex of the event without ``EdrData`` (canonical JSON, sorted keys)."""
    body = dict(event)
    if "Event" in body and isinstance(body["Event"], Mapping):
        body["Event"] = {k: v for k, v in body["Event"].items() if k != "EdrData"}
    return spooled_event_hash(serialize_event(body))


def safe_name(name: str) -> str:
    """A file name that cannot escape its directory: basename, unsafe characters replaced, bounded."""
    base = _UNSAFE.sub("_", os.path.basename(name.replace(":", "_ADS_")))[:160]
    if not base or base.startswith("."):
        base = "_" + base
    return base


class _Writer:
    """File-like sink that hashes the original bytes and gzips them into ``raw``."""

    def __init__(self, raw: BinaryIO, compress: bool) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.artifact: Artifact | None = None
        self._raw = raw
        self._gz = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) if compress else None

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        (self._gz or self._raw).write(data)
        return len(data)

    def close(self) -> None:
        if self._gz is not None:
            self._gz.close()


class ArtifactStore:
    """Writes artifacts under ``root``; ``compress`` False keeps raw files (no .gz suffix)."""

    def __init__(self, root: str | os.PathLike[str], *, compress: bool = True) -> None:
        self.root = Path(root).resolve()
        self.compress = compress

    def event_dir(self, guid: str, event: Mapping[str, Any]) -> Path:
        """``<root>/<guid>/<event hash>``, created; a missing or malformed guid becomes the zero GUID
        (the uploader only ships ``{uuid}`` directories)."""
        guid = guid if _GUID.match(guid or "") else ZERO_GUID
        path = self._inside(self.root / guid / event_hash(event))
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise InvalidInput(
                f"artifact path {path} escapes the dump directory {self.root}", target=str(path)
            )
        return resolved

    @contextmanager
    def writer(
        self, directory: Path, name: str, kind: str, meta: Mapping[str, Any] | None = None
    ) -> Iterator[_Writer]:
        """Stream an artifact; on success the file is renamed into place and its sidecar written.

        The finished Artifact is available as ``writer.artifact`` after the block.
        """
        final = self._inside(Path(directory) / (safe_name(name) + (".gz" if self.compress else "")))
        part = final.with_name(final.name + ".part")
        with open(part, "wb") as raw:
            w = _Writer(raw, self.compress)
            try:
                yield w
                w.close()
                raw.flush()
                os.fsync(raw.fileno())
            except BaseException:
                raw.close()
                part.unlink(missing_ok=True)
                raise
        os.replace(part, final)
        stored = hashlib.sha256()
        with open(final, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                stored.update(chunk)
        artifact = Artifact(
            path=str(final),
            name=final.name,
            kind=kind,
            size=w.size,
            sha256=w.sha256.hexdigest(),
            stored_sha256=stored.hexdigest(),
            meta={"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(meta or {})},
        )
        sidecar = final.with_name(final.name + ".json")
        sidecar.write_text(json.dumps({**artifact.to_dict(), "compressed": self.compress}, indent=1))
        w.artifact = artifact

    def write_bytes(
        self, directory: Path, name: str, data: bytes, kind: str, meta: Mapping[str, Any] | None = None
    ) -> Artifact:
        with self.writer(directory, name, kind, meta) as w:
            w.write(data)
        assert w.artifact is not None
        return w.artifact

    def write_json(
        self, directory: Path, name: str, obj: Any, kind: str, meta: Mapping[str, Any] | None = None
    ) -> Artifact:
        data = orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str)
        return self.write_bytes(directory, name, data, kind, meta)

    def copy_fd(
        self, directory: Path, name: str, fd: int, kind: str, meta: Mapping[str, Any] | None = None
    ) -> Artifact:
        """Copy an open file (read with pread from offset 0)."""
        with self.writer(directory, name, kind, meta) as w:
            off = 0
            while chunk := os.pread(fd, 1 << 20, off):
                w.write(chunk)
                off += len(chunk)
        assert w.artifact is not None
        return w.artifact
