"""A content-addressed on-disk store of compiled rules (JSON), so a rule set loads once per change.

The agent runs as root and trusts what it reads here, so the store is only used when it is private:
a directory owned by the effective user with no group or other permissions (created ``0700``), and
entries that are regular files owned by that user with mode ``0600``, opened relative to the
directory without following symlinks. An entry holds JSON (never pickle), written to a temporary
file and renamed into place, and carries its own key; anything unexpected (missing, wrong owner or
mode, too big, not JSON, other key or format) is a miss, logged at debug level, and the caller
compiles the rules as if there were no store. The directory is bounded (entries and bytes); the
oldest entries go first.

Where: ``$VIGIL_RULE_CACHE_DIR``, else ``/var/cache/vigil/rules`` for root, else
``$XDG_CACHE_HOME/vigil/rules`` (``~/.cache/vigil/rules``). ``VIGIL_NO_RULE_CACHE=1``,
``vigil scan --no-rule-cache`` and ``vigil rules check --no-rule-cache`` turn it off.
This module imports nothing heavy: the CLI sets it up before knowing which front ends it needs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "ENV_DIR",
    "ENV_DISABLE",
    "MAX_ENTRIES",
    "MAX_ENTRY_BYTES",
    "MAX_TOTAL_BYTES",
    "RuleStore",
    "code_fingerprint",
    "configure_rule_cache",
    "open_rule_store",
    "rule_cache_directory",
]

logger = logging.getLogger(__name__)

ENV_DIR = "VIGIL_RULE_CACHE_DIR"
ENV_DISABLE = "VIGIL_NO_RULE_CACHE"
#: Bounds of the directory: past either, the oldest entries are removed down to 3/4 of it.
MAX_ENTRIES = 20_000
MAX_TOTAL_BYTES = 256 * 1024 * 1024
#: An entry larger than this is neither written nor read.
MAX_ENTRY_BYTES = 16 * 1024 * 1024
#: A process that writes entries checks the bounds at its first write and every this many writes.
PRUNE_EVERY = 512
_SUFFIX = ".json"
_TMP_PREFIX = ".tmp-"

_enabled: bool | None = None  # None: the environment decides
_directory: Path | None = None
_writes_since_prune: int | None = None  # None: this process has not written yet


def configure_rule_cache(*, enabled: bool | None = None, directory: str | Path | None = None) -> None:
    """Turn the store on or off (None: ``VIGIL_NO_RULE_CACHE`` decides) and choose its directory."""
    global _enabled, _directory
    _enabled = enabled
    _directory = Path(directory) if directory is not None else None


def code_fingerprint(modules: Iterable[Path], facts: Iterable[str]) -> str:
    """Digest of the source of ``modules`` and of ``facts`` (library versions, formats): the code
    whose output a front end's entries keep, part of their keys so that any change is a miss (a
    module that cannot be read counts as changed)."""
    import hashlib  # here: the CLI imports this module before it knows whether anything is cached

    h = hashlib.sha256()
    for module in modules:
        h.update(module.name.encode() + b"\0")
        try:
            h.update(module.read_bytes())
        except OSError:
            h.update(b"?")
    for fact in facts:
        h.update(b"\0" + fact.encode())
    return h.hexdigest()


def rule_cache_directory() -> Path | None:
    """The store's directory, or None when it is turned off."""
    if _enabled is False:
        return None
    if _enabled is None and os.environ.get(ENV_DISABLE, "").strip().lower() in ("1", "true", "yes", "on"):
        return None
    if _directory is not None:
        return _directory
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/vigil/rules")
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "vigil" / "rules"
    try:
        return Path.home() / ".cache" / "vigil" / "rules"
    except RuntimeError:  # no home directory: no cache
        return None


def _private_dir(st: os.stat_result) -> str | None:
    """Why a directory's status makes it unfit for the store, or None."""
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not {os.geteuid()}"
    if st.st_mode & 0o077:
        return f"mode {stat.S_IMODE(st.st_mode):o} lets other users in (want 700)"
    return None


class RuleStore:
    """An open, checked store directory. Use as a context manager (it holds a directory descriptor)."""

    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self._fd = fd

    def __enter__(self) -> RuleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def get(self, key: str) -> Any | None:
        """The value stored under ``key`` (a hex digest), or None on any miss or problem."""
        name = key + _SUFFIX
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._fd)
        except FileNotFoundError:
            return None
        except OSError as err:
            logger.debug("rule cache: cannot open %s/%s: %s", self.directory, name, err)
            return None
        try:
            st = os.fstat(fd)
            problem = (
                "not a regular file"
                if not stat.S_ISREG(st.st_mode)
                else f"owned by uid {st.st_uid}"
                if st.st_uid != os.geteuid()
                else f"mode {stat.S_IMODE(st.st_mode):o} (want 600)"
                if st.st_mode & 0o077
                else f"{st.st_size} bytes, more than {MAX_ENTRY_BYTES}"
                if st.st_size > MAX_ENTRY_BYTES
                else None
            )
            if problem is not None:
                logger.debug("rule cache: ignoring %s/%s: %s", self.directory, name, problem)
                return None
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(MAX_ENTRY_BYTES + 1)
        except OSError as err:
            logger.debug("rule cache: cannot read %s/%s: %s", self.directory, name, err)
            return None
        finally:
            os.close(fd)
        try:
            entry = json.loads(data)
        except (ValueError, RecursionError) as err:
            logger.debug("rule cache: %s/%s is not JSON: %s", self.directory, name, err)
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or "value" not in entry:
            logger.debug("rule cache: %s/%s is not an entry for its key", self.directory, name)
            return None
        return entry["value"]

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-serialisable) under ``key``: temporary file, then rename. Best effort."""
        global _writes_since_prune
        data = json.dumps({"key": key, "value": value}, ensure_ascii=False, separators=(",", ":")).encode()
        if len(data) > MAX_ENTRY_BYTES:
            logger.debug("rule cache: entry %s too big (%d bytes), not stored", key, len(data))
            return
        tmp = f"{_TMP_PREFIX}{key}-{os.urandom(6).hex()}"  # not secrets: 5 ms of imports at start-up
        try:
            fd = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=self._fd,
            )
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(tmp, key + _SUFFIX, src_dir_fd=self._fd, dst_dir_fd=self._fd)
        except OSError as err:
            logger.debug("rule cache: cannot write %s/%s: %s", self.directory, key, err)
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self._fd)
            return
        if _writes_since_prune is None or _writes_since_prune >= PRUNE_EVERY:
            _writes_since_prune = 0
            self.prune()
        _writes_since_prune += 1

    def _entries(self) -> Iterator[tuple[str, os.stat_result]]:
        with os.scandir(self._fd) as it:
            for entry in it:
                with contextlib.suppress(OSError):
                    yield entry.name, entry.stat(follow_symlinks=False)

    def prune(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_TOTAL_BYTES) -> int:
        """Remove the oldest entries while the store is over a bound (down to 3/4 of it), and
        temporary files left by a crash; returns how many files were removed."""
        now = time.time()
        entries: list[tuple[float, int, str]] = []
        stale: list[str] = []
        for name, st in self._entries():
            if name.startswith(_TMP_PREFIX):
                if now - st.st_mtime > 3600:
                    stale.append(name)
            elif name.endswith(_SUFFIX) and stat.S_ISREG(st.st_mode):
                entries.append((st.st_mtime, st.st_size, name))
        total = sum(size for _, size, _ in entries)
        doomed = list(stale)
        if len(entries) > max_entries or total > max_bytes:
            entries.sort()
            keep_entries, keep_bytes = max_entries * 3 // 4, max_bytes * 3 // 4
            count = len(entries)
            for _, size, name in entries:
                if count <= keep_entries and total <= keep_bytes:
                    break
                doomed.append(name)
                count -= 1
                total -= size
        for name in doomed:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self._fd)
        if doomed:
            logger.debug("rule cache: removed %d file(s) from %s", len(doomed), self.directory)
        return len(doomed)


def _open_dir(directory: Path) -> int | None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    problem = _private_dir(os.fstat(fd))
    if problem is not None:
        os.close(fd)
        logger.debug("rule cache: not using %s: %s", directory, problem)
        return None
    return fd


def open_rule_store(create: bool = True) -> RuleStore | None:
    """The store, checked private (created ``0700`` when missing and ``create``), or None."""
    directory = rule_cache_directory()
    if directory is None:
        return None
    fd = _open_dir(directory)
    if fd is None and create and not os.path.lexists(directory):
        try:
            directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass  # created meanwhile by another process: checked below like any other
        except OSError as err:
            logger.debug("rule cache: cannot create %s: %s", directory, err)
            return None
        fd = _open_dir(directory)
    return RuleStore(directory, fd) if fd is not None else None
