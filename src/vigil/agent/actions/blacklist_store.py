"""The persistent sha256 blacklist: a JSON file in the data dir, replaced atomically on change.

Format::

    {"version": 1, "sha256": {"<64 hex>": {"added": "<RFC 3339>", "reason": "..."}}}

Lookups read an immutable snapshot, so the exec responder never takes a lock.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from vigil.agent.actions.errors import InvalidInput

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def normalize_sha256(value: object, *, where: str = "sha256") -> str:
    """Lower-case hex sha256, or InvalidInput naming the value and where it came from."""
    if not isinstance(value, str) or not _SHA256.match(value.strip().lower()):
        raise InvalidInput(f"{where}: not a sha256 hex digest: {value!r}", action="blacklist", target=value)
    return value.strip().lower()


class Blacklist:
    """A set of sha256 digests with a reason each, persisted to ``path`` (None: memory only)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, str]] = {}
        self._snapshot: frozenset[str] = frozenset()
        self._listeners: list[Callable[[], None]] = []
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{self.path}: unreadable blacklist: {exc}", action="blacklist") from exc
        table = doc.get("sha256") if isinstance(doc, dict) else None
        if not isinstance(table, dict):
            raise InvalidInput(f"{self.path}: expected an object with a 'sha256' table", action="blacklist")
        for key, raw in table.items():
            try:
                digest = normalize_sha256(key, where=f"{self.path}: sha256 entry")
            except InvalidInput as exc:
                logger.warning("skipping blacklist entry: %s", exc)
                continue
            meta = raw if isinstance(raw, dict) else {}
            self._entries[digest] = {
                "added": str(meta.get("added", "")),
                "reason": str(meta.get("reason", "")),
            }
        self._snapshot = frozenset(self._entries)

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"version": 1, "sha256": self._entries}
        fd, tmp = tempfile.mkstemp(prefix=".blacklist-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise

    def add_listener(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` after every change (the exec responder child gets the new set this way)."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[], None]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def _changed(self) -> None:
        for fn in list(self._listeners):
            try:
                fn()
            except Exception:
                logger.exception("blacklist listener failed")

    def add(self, sha256: str, reason: str = "") -> None:
        digest = normalize_sha256(sha256)
        with self._lock:
            added = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self._entries[digest] = {"added": added, "reason": reason}
            self._save()
            self._snapshot = frozenset(self._entries)
        self._changed()

    def remove(self, sha256: str) -> bool:
        digest = normalize_sha256(sha256)
        with self._lock:
            if self._entries.pop(digest, None) is None:
                return False
            self._save()
            self._snapshot = frozenset(self._entries)
        self._changed()
        return True

    def reason(self, sha256: str) -> str:
        return self._entries.get(sha256, {}).get("reason", "")

    def reasons(self) -> dict[str, str]:
        """sha256 -> reason, a copy."""
        with self._lock:
            return {k: v.get("reason", "") for k, v in self._entries.items()}

    def entries(self) -> dict[str, dict[str, str]]:
        with self._lock:
            return {k: dict(v) for k, v in self._entries.items()}

    def __contains__(self, sha256: object) -> bool:
        return sha256 in self._snapshot

    def __len__(self) -> int:
        return len(self._snapshot)

    def __bool__(self) -> bool:
        return bool(self._snapshot)
