"""Image hashes (md5, sha1, sha256) with a cache keyed by (dev, inode, mtime, size).

The same binary runs thousands of times; hashing it once is enough as long as the file did not
change, which the stat key detects. Hashing goes through an open file descriptor (the fanotify
event fd, /proc/PID/exe, or the path) and the stat key is taken from that same descriptor, so the
hash always belongs to the key it is stored under.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict

logger = logging.getLogger(__name__)

StatKey = tuple[int, int, int, int]
MAX_HASH_BYTES = 256 << 20  # do not hash images above 256 MiB (reported as unknown)


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def hash_fd(fd: int) -> dict[str, str]:
    """md5, sha1 and sha256 of the file behind `fd`, read with pread (the offset is untouched)."""
    md5, sha1, sha256 = (
        hashlib.md5(usedforsecurity=False),
        hashlib.sha1(usedforsecurity=False),
        hashlib.sha256(),
    )
    off = 0
    while True:
        chunk = os.pread(fd, 1 << 20, off)
        if not chunk:
            break
        md5.update(chunk)
        sha1.update(chunk)
        sha256.update(chunk)
        off += len(chunk)
    return {"md5": md5.hexdigest(), "sha1": sha1.hexdigest(), "sha256": sha256.hexdigest()}


class HashCache:
    """LRU of hashes by stat key; thread-safe (the fanotify source fills it from its thread)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: OrderedDict[StatKey, dict[str, str]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: StatKey) -> dict[str, str] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
            return found

    def peek(self, key: StatKey) -> bool:
        """Whether `key` is cached (no hit/miss accounting)."""
        with self._lock:
            return key in self._items

    def put(self, key: StatKey, hashes: dict[str, str]) -> None:
        with self._lock:
            self._items[key] = hashes
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def hash_open_fd(self, fd: int) -> tuple[StatKey, dict[str, str]] | None:
        """Hashes of an already open regular file, through the cache."""
        st = os.fstat(fd)
        if st.st_mode & 0o170000 != 0o100000 or st.st_size > MAX_HASH_BYTES:
            return None
        key = stat_key(st)
        found = self.get(key)
        if found is None:
            self.misses += 1
            found = hash_fd(fd)
            self.put(key, found)
        return key, found

    def hash_path(self, path: str) -> tuple[StatKey, dict[str, str]] | None:
        """Hashes of `path` (also `/proc/PID/exe`, which opens the image even if deleted)."""
        try:
            # O_NONBLOCK: a FIFO planted at the path must not block the pipeline.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            return self.hash_open_fd(fd)
        except OSError:
            return None
        finally:
            os.close(fd)


class Hasher:
    """A worker thread that fills the cache, so one big binary never stalls the event pipeline.

    `submit(pid, path, done)` hashes `/proc/PID/exe` (or `path` when the process is gone) and then
    calls `done(pid)` from the worker thread.
    """

    def __init__(self, cache: HashCache) -> None:
        import queue

        self.cache = cache
        self._jobs: queue.Queue[tuple[int, str, object] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="vigil-hasher", daemon=True)
        self._thread.start()

    def submit(self, pid: int, path: str, done: object) -> None:
        self._jobs.put((pid, path, done))

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            pid, path, done = job
            try:
                if self.cache.hash_path(f"/proc/{pid}/exe") is None:
                    self.cache.hash_path(path)
            except Exception:
                logger.exception("hasher: hashing %s failed", path)
            finally:
                done(pid)  # type: ignore[operator]
