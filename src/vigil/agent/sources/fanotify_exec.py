"""Race-free image hashes from fanotify FAN_OPEN_EXEC with filesystem marks.

The kernel hands the listener an fd to the very file being executed, before the new image runs, so
its hashes cannot be swapped under us (unlike re-opening the path later). Hashes go into the
tracker's hash cache keyed by (dev, inode, mtime, size), and an `image` record tells the pipeline
which file the pid is about to run. Notification only: this source never blocks anything.
"""

from __future__ import annotations

import errno
import logging
import os
import select
from concurrent.futures import ThreadPoolExecutor

from vigil.agent.hashing import HashCache, stat_key
from vigil.agent.sources import _fanotify as fan
from vigil.agent.sources.base import CAP_SYS_ADMIN, EventSource, has_capability

logger = logging.getLogger(__name__)

_INLINE_BYTES = 4 << 20  # images above this (and not cached) are hashed on a worker thread
# Filesystems that hold executables worth hashing; pseudo filesystems are skipped.
LOCAL_FS = {
    "ext2",
    "ext3",
    "ext4",
    "xfs",
    "btrfs",
    "tmpfs",
    "overlay",
    "f2fs",
    "vfat",
    "exfat",
    "zfs",
    "squashfs",
    "erofs",
}


def _interpreters() -> list[str]:
    """The ELF program interpreters present (ld-linux for the usual architectures)."""
    names = [
        "/lib64/ld-linux-x86-64.so.2",
        "/lib/ld-linux-aarch64.so.1",
        "/lib/ld-linux.so.2",
        "/lib/ld-musl-x86_64.so.1",
    ]
    return sorted({os.path.realpath(n) for n in names if os.path.exists(n)})


def local_filesystems() -> list[str]:
    """One mount point per local superblock, from /proc/self/mountinfo."""
    seen: set[str] = set()
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, right = line.split(" - ", 1)
                fields = left.split()
                fstype = right.split()[0]
                dev, mnt = fields[2], fields[4].replace("\\040", " ")
                if fstype in LOCAL_FS and dev not in seen:
                    seen.add(dev)
                    out.append(mnt)
    except OSError:
        return ["/"]
    return out


class FanotifyExecSource(EventSource):
    """Emits `image` records (pid, path, stat key, hashes) for every exec on marked filesystems."""

    name = "fanotify_exec"
    loop_capable = True
    wants_hash_cache = True

    def __init__(self, hash_cache: HashCache | None = None, mounts: list[str] | None = None) -> None:
        super().__init__()
        self.hash_cache = hash_cache or HashCache()
        self.mounts = mounts
        self.marked: list[str] = []
        self._fd = -1
        self._paths: dict[tuple[int, int, int, int], str] = {}  # stat key -> path (saves a readlink)
        self._big = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-fanotify-hash")

    def requirements(self) -> list[str]:
        unmet = []
        if not has_capability(CAP_SYS_ADMIN):
            unmet.append("fanotify filesystem marks need CAP_SYS_ADMIN (run the agent as root)")
        if not os.path.exists("/proc/sys/fs/fanotify"):
            unmet.append("the kernel has no fanotify (CONFIG_FANOTIFY is off)")
        return unmet

    def _open(self) -> None:
        self._fd = fan.init(fan.FAN_CLASS_NOTIF | fan.FAN_CLOEXEC | fan.FAN_NONBLOCK)
        for mnt in self.mounts if self.mounts is not None else local_filesystems():
            try:
                fan.mark(self._fd, fan.FAN_MARK_ADD | fan.FAN_MARK_FILESYSTEM, fan.FAN_OPEN_EXEC, mnt)
                self.marked.append(mnt)
            except OSError as e:
                logger.info("fanotify_exec: cannot mark %s: %s", mnt, e.strerror)
        if not self.marked:
            os.close(self._fd)
            self._fd = -1
            raise OSError(errno.ENODEV, "no filesystem could be marked for FAN_OPEN_EXEC")
        # Every dynamically linked exec also exec-opens the program interpreter: ignore those
        # (half of all events); an exec *of* the interpreter is still hashed via /proc/PID/exe.
        for interp in _interpreters():
            try:
                ignore = fan.FAN_MARK_ADD | fan.FAN_MARK_IGNORED_MASK | fan.FAN_MARK_IGNORED_SURV_MODIFY
                fan.mark(self._fd, ignore, fan.FAN_OPEN_EXEC, interp)
            except OSError as e:
                logger.debug("fanotify_exec: cannot ignore %s: %s", interp, e.strerror)

    def _close(self) -> None:
        self._big.shutdown(wait=True)
        self._big = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-fanotify-hash")
        if self._fd >= 0:
            os.close(self._fd)  # closing the group removes every mark it holds
            self._fd = -1
        self.marked = []

    def _loop_fd(self) -> int:
        return self._fd

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wakefd, select.POLLIN)
        while not self._stop.is_set():
            if poller.poll():
                self._drain()

    def _drain(self) -> None:
        try:
            events = list(fan.read_events(self._fd))
        except BlockingIOError:
            return
        own = os.getpid()
        for ev in events:
            self._received += 1
            if ev.mask & fan.FAN_Q_OVERFLOW:
                self._dropped += 1
                self._emit({"type": "lost", "count": 1})
                continue
            if ev.fd < 0:
                continue
            if ev.pid == own:
                os.close(ev.fd)
                continue
            self._dispatch(ev.fd, ev.pid)

    def _dispatch(self, fd: int, pid: int) -> None:
        """Small or cached images inline; big new ones on the worker, so they delay nothing else."""
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            return
        if st.st_size > _INLINE_BYTES and not self.hash_cache.peek(stat_key(st)):
            self._big.submit(self._image_and_close, fd, pid)
        else:
            self._image_and_close(fd, pid)

    def _image_and_close(self, fd: int, pid: int) -> None:
        try:
            self._image(fd, pid)
        finally:
            os.close(fd)

    def _image(self, fd: int, pid: int) -> None:
        try:
            found = self.hash_cache.hash_open_fd(fd)
            if found is None:
                return
            key, hashes = found
            path = self._paths.get(key)
            if path is None:
                path = os.readlink(f"/proc/self/fd/{fd}")
                if len(self._paths) > 4096:
                    self._paths.clear()
                self._paths[key] = path
        except OSError:
            return
        self._emit({"type": "image", "pid": pid, "path": path, "key": key, "hashes": hashes})
