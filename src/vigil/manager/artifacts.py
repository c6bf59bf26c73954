"""Artifacts uploaded by agents: ``<root>/<endpoint-uuid>/<{process-guid}>/<event-hash>/<file>``.

Every name that reaches the filesystem is checked against an anchored pattern (WHIDS' patterns are
unanchored, which lets an authenticated agent write outside the dump directory), and every
resolved path must stay under the root. Chunks wait in ``<dir>/.chunks/`` until the last one
arrives, then the file is reassembled and written atomically.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vigil.manager.errors import BadRequest, NotFound, TooLarge
from vigil.manager.times import format_ns

__all__ = ["ArtifactStore", "check_event_hash", "check_filename", "normalize_guid"]

logger = logging.getLogger(__name__)

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_GUID = re.compile(r"\{?(" + _UUID + r")\}?\Z")
_ENDPOINT = re.compile(_UUID + r"\Z")
_HASH = re.compile(r"[0-9a-fA-F]{32,128}\Z")
_FILENAME = re.compile(r"[\w\-][\w .\-]{0,254}\Z")
_CHUNKS = ".chunks"
MAX_CHUNKS = 10_000


def check_filename(name: str) -> str:
    """A single path component: letters, digits, ``_ - . space``; no leading dot, no separators."""
    if not isinstance(name, str) or not _FILENAME.match(name) or name.strip() != name or ".." in name:
        raise BadRequest(
            f"invalid file name {name!r}: one path component of [A-Za-z0-9_ .-]", field="filename"
        )
    return name


def normalize_guid(guid: str) -> str:
    """``{uuid}`` with braces (as stored on disk) from a GUID given with or without them."""
    match = _GUID.match(guid) if isinstance(guid, str) else None
    if match is None:
        raise BadRequest(f"invalid process GUID {guid!r}", field="guid")
    return "{" + match.group(1).lower() + "}"


def check_event_hash(value: str) -> str:
    if not isinstance(value, str) or not _HASH.match(value):
        raise BadRequest(f"invalid event hash {value!r}: 32 to 128 hex digits", field="event-hash")
    return value.lower()


def _check_endpoint(uuid: str) -> str:
    if not _ENDPOINT.match(uuid):
        raise BadRequest(f"invalid endpoint uuid {uuid!r}", field="uuid")
    return uuid.lower()


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = self.root.resolve()

    def _inside(self, path: Path) -> Path:
        real = path.resolve()
        if not real.is_relative_to(self._real_root):
            raise BadRequest("path escapes the artifact directory", field="path")
        return real

    def _dir(self, endpoint: str, guid: str, event_hash: str) -> Path:
        return self._inside(
            self.root / _check_endpoint(endpoint) / normalize_guid(guid) / check_event_hash(event_hash)
        )

    def upload(
        self,
        endpoint: str,
        *,
        filename: str,
        guid: str,
        event_hash: str,
        content: bytes,
        chunk: int,
        total: int,
    ) -> dict[str, Any]:
        """Store one chunk; the last one reassembles the file. Returns what was written."""
        check_filename(filename)
        if not 1 <= total <= MAX_CHUNKS or not 1 <= chunk <= total:
            raise BadRequest(
                f"chunk {chunk} of {total}: need 1 <= chunk <= total <= {MAX_CHUNKS}", field="chunk"
            )
        directory = self._dir(endpoint, guid, event_hash)
        target = self._inside(directory / filename)
        parts = directory / _CHUNKS
        if chunk < total:
            parts.mkdir(parents=True, exist_ok=True)
            self._atomic_write(parts / f"{filename}.{chunk}", [content])
            return {"file": filename, "chunk": chunk, "total": total, "complete": False}
        missing = [n for n in range(1, total) if not (parts / f"{filename}.{n}").is_file()]
        if missing:
            raise BadRequest(f"{filename}: missing chunk(s) {missing[:10]} of {total}", field="chunk")
        pieces = [(parts / f"{filename}.{n}").read_bytes() for n in range(1, total)] + [content]
        directory.mkdir(parents=True, exist_ok=True)
        self._atomic_write(target, pieces)
        for n in range(1, total):
            (parts / f"{filename}.{n}").unlink(missing_ok=True)
        if parts.is_dir() and not any(parts.iterdir()):
            parts.rmdir()
        size = sum(len(p) for p in pieces)
        logger.info("artifact %s stored (%d bytes, %d chunk(s))", target, size, total)
        return {"file": filename, "chunk": chunk, "total": total, "complete": True, "size": size}

    @staticmethod
    def _atomic_write(path: Path, pieces: list[bytes]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                for piece in pieces:
                    handle.write(piece)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def list_endpoint(self, endpoint: str, since: int = 0) -> list[dict[str, Any]]:
        """The ``EndpointDumps`` groups of one endpoint, modified at or after ``since`` (ns)."""
        base = self.root / _check_endpoint(endpoint)
        groups: list[dict[str, Any]] = []
        if not base.is_dir():
            return groups
        for guid_dir in sorted(base.iterdir()):
            if not guid_dir.is_dir() or not _GUID.match(guid_dir.name):
                continue
            for hash_dir in sorted(guid_dir.iterdir()):
                if not hash_dir.is_dir() or not _HASH.match(hash_dir.name):
                    continue
                files: list[dict[str, Any]] = []
                for entry in sorted(hash_dir.iterdir()):
                    if entry.name.startswith(".") or not entry.is_file():
                        continue
                    stat = entry.stat()
                    files.append({"name": entry.name, "size": stat.st_size, "mtime": stat.st_mtime_ns})
                if not files:
                    continue
                creation = min(f["mtime"] for f in files)
                modification = max(f["mtime"] for f in files)
                if modification < since:
                    continue
                pguid = guid_dir.name.strip("{}")
                groups.append(
                    {
                        "creation": format_ns(creation),
                        "modification": format_ns(modification),
                        "process-guid": pguid,
                        "event-hash": hash_dir.name,
                        "base-url": f"/endpoints/{base.name}/artifacts/{pguid}/{hash_dir.name}/",
                        "files": [
                            {"name": f["name"], "size": f["size"], "timestamp": format_ns(f["mtime"])}
                            for f in files
                        ],
                    }
                )
        return groups

    def list_all(self, since: int = 0) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for entry in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if entry.is_dir() and _ENDPOINT.match(entry.name):
                out[entry.name] = self.list_endpoint(entry.name, since)
        return out

    def read(
        self, endpoint: str, *, guid: str, event_hash: str, filename: str, gunzip: bool, limit: int
    ) -> bytes:
        path = self._inside(self._dir(endpoint, guid, event_hash) / check_filename(filename))
        if not path.is_file():
            raise NotFound(f"artifact {filename} not found", field="fname")
        if not gunzip:
            return path.read_bytes()
        try:
            with gzip.open(path, "rb") as handle:
                data = handle.read(limit + 1)
        except (OSError, EOFError) as exc:
            raise BadRequest(f"{filename} is not gzip data: {exc}", field="gunzip") from exc
        if len(data) > limit:
            raise TooLarge(f"{filename} decompresses to more than {limit} bytes", field="gunzip")
        return data

    def delete_endpoint(self, endpoint: str) -> None:
        base = self._inside(self.root / _check_endpoint(endpoint))
        if base.is_dir():
            shutil.rmtree(base)
