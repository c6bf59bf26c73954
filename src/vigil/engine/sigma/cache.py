"""The rule cache as the Sigma loader uses it: one pack per rule directory, one entry per file.

A file's entry is keyed by the SHA-256 of its bytes, the compile options (``expand`` placeholders)
and a fingerprint of the code that compiles it (this front end, the IR, and the versions of vigil,
pySigma, RE2 and PyYAML), so any change to one of them is a miss. Entries of one directory are
kept in one pack (``vigil.engine.rule_cache`` entry), read once per load and rewritten once when
a file of the directory was compiled: creating a few thousand small files costs more than
compiling them on some file systems. A pack holds one entry per file name, and the names of
files that are gone are dropped when it is rewritten, so it stays the size of its directory.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
from pathlib import Path
from typing import Any

from vigil.engine.rule_cache import code_fingerprint, open_rule_store
from vigil.engine.sigma.codec import FORMAT, CacheFormatError, decode_file_result, encode_file_result
from vigil.engine.sigma.options import CompileOptions
from vigil.engine.sigma.results import FileResult

__all__ = ["DirectoryPacks", "file_key"]

logger = logging.getLogger(__name__)

_code_digest: str | None = None


def _code_fingerprint() -> str:
    """Digest of the code whose output the cache keeps: this front end, the IR, the libraries."""
    global _code_digest
    if _code_digest is None:
        here = Path(__file__).resolve().parent
        facts = [f"codec={FORMAT}"]
        for dist in ("vigil", "pysigma", "google-re2", "pyyaml"):
            try:
                facts.append(f"{dist}={importlib.metadata.version(dist)}")
            except importlib.metadata.PackageNotFoundError:
                facts.append(f"{dist}=-")
        modules = [*sorted(here.glob("*.py")), here.parent / "ir.py", here.parent / "ir_codec.py"]
        _code_digest = code_fingerprint(modules, facts)
    return _code_digest


def _options_digest(opts: CompileOptions | None) -> bytes:
    placeholders = {k: list(v) for k, v in (opts or CompileOptions()).placeholders.items()}
    return json.dumps(placeholders, sort_keys=True, default=repr).encode()


def file_key(data: bytes, salt: bytes) -> str:
    """The cache key of a rule file's bytes compiled by this code with the options ``salt`` holds
    (``_salt``)."""
    h = hashlib.sha256(salt)
    h.update(hashlib.sha256(data).digest())
    return h.hexdigest()


def _salt(opts: CompileOptions | None) -> bytes:
    return b"vigil-sigma-file\0" + _code_fingerprint().encode() + b"\0" + _options_digest(opts) + b"\0"


class DirectoryPacks:
    """One load's view of the cache: packs read on first use, changed ones written by :meth:`flush`."""

    def __init__(self, opts: CompileOptions | None) -> None:
        self._salt = _salt(opts)
        self._packs: dict[str, dict[str, list[Any]]] = {}
        self._dirty: set[str] = set()

    def _pack_name(self, directory: str) -> str:
        h = hashlib.sha256(b"vigil-sigma-pack\0" + self._salt)  # the salt: code and options
        h.update(os.fsencode(directory))
        return h.hexdigest()

    def _pack(self, directory: str) -> dict[str, list[Any]]:
        pack = self._packs.get(directory)
        if pack is None:
            pack = self._packs[directory] = self._read(directory)
        return pack

    def _read(self, directory: str) -> dict[str, list[Any]]:
        store = open_rule_store(create=False)
        if store is None:
            return {}
        with store:
            value = store.get(self._pack_name(directory))
        if value is None:
            return {}
        files = value.get("files") if isinstance(value, dict) else None
        if (
            not isinstance(value, dict)
            or value.get("format") != FORMAT
            or value.get("dir") != directory
            or not isinstance(files, dict)
            or not all(isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) for v in files.values())
        ):
            logger.debug("rule cache: pack of %s is not one this code writes: ignored", directory)
            return {}
        return files

    def lookup(self, path: str, data: bytes) -> tuple[str, FileResult | None]:
        """The file's key and its cached result (None on a miss or an unusable entry)."""
        key = file_key(data, self._salt)
        directory, name = os.path.split(path)
        entry = self._pack(directory).get(name)
        if entry is None or entry[0] != key:
            return key, None
        try:
            return key, decode_file_result(entry[1], path)
        except (CacheFormatError, TypeError, ValueError, KeyError, IndexError, AttributeError) as err:
            logger.debug("rule cache: entry of %s unusable (%s): compiling it", path, err)
            return key, None

    def record(self, path: str, key: str, result: FileResult) -> None:
        """Keep the result of a file just compiled (written by the next :meth:`flush`)."""
        directory, name = os.path.split(path)
        self._pack(directory)[name] = [key, encode_file_result(result, path)]
        self._dirty.add(directory)

    def flush(self) -> None:
        """Write the packs that changed (atomically), then forget every pack read."""
        try:
            if not self._dirty:
                return
            store = open_rule_store(create=True)
            if store is None:
                return
            with store:
                for directory in sorted(self._dirty):
                    files = {
                        name: entry
                        for name, entry in self._packs[directory].items()
                        if os.path.isfile(os.path.join(directory, name))
                    }
                    value = {"format": FORMAT, "dir": directory, "files": files}
                    store.put(self._pack_name(directory), value)
        finally:
            self._packs.clear()
            self._dirty.clear()
