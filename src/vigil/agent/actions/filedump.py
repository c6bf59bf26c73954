"""Copy the files behind a detection: image, parent image, files named in the command lines and
in the event, binaries deleted after start (through /proc/PID/exe). One copy per sha256 for the
dumper's lifetime; every file found also gets a ``<name>.sha256`` artifact, as WHIDS does.
"""

from __future__ import annotations

import logging
import os
import shlex
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from vigil.agent.actions._proc import sha256_fd
from vigil.agent.actions.artifacts import Artifact, ArtifactStore

logger = logging.getLogger(__name__)

#: event fields that name files (Sysmon names)
FILE_FIELDS = ("Image", "ParentImage", "SourceImage", "ImageLoaded", "TargetFilename")
_PSEUDO_ROOTS = ("/proc/", "/sys/", "/dev/")


class ProcessLike(Protocol):
    """The ProcessInfo fields the actions read."""

    pid: int
    ppid: int
    guid: str
    image: str
    command_line: str
    cwd: str


@dataclass(frozen=True, slots=True)
class FileFound:
    """A candidate file: why it was picked, the path to open, and the path to report."""

    reason: str
    open_path: str
    display_path: str


def command_line_paths(command_line: str, cwd: str) -> list[str]:
    """Paths named in a command line (also ``--opt=PATH``), made absolute against ``cwd``."""
    try:
        tokens = shlex.split(command_line)
    except ValueError:
        tokens = command_line.split()
    paths = []
    for token in tokens:
        candidate = token.partition("=")[2] if token.startswith("-") else token
        if not candidate or ("/" not in candidate and not os.path.exists(os.path.join(cwd, candidate))):
            continue
        paths.append(os.path.normpath(os.path.join(cwd or "/", candidate)))
    return list(dict.fromkeys(paths))


def collect(process: ProcessLike | None, event: Mapping[str, Any]) -> list[FileFound]:
    """Every file worth copying for this process and event, without duplicates."""
    found: list[FileFound] = []
    data = event.get("Event", {}).get("EventData", {}) if isinstance(event, Mapping) else {}
    if process is not None:
        exe = _link(f"/proc/{process.pid}/exe")
        if exe:
            found.append(FileFound("image", f"/proc/{process.pid}/exe", exe))
        elif process.image:
            found.append(FileFound("image", process.image, process.image))
        parent_image = str(data.get("ParentImage", ""))
        parent_exe = _link(f"/proc/{process.ppid}/exe") if process.ppid > 1 else ""
        if parent_exe and (not parent_image or parent_exe.removesuffix(" (deleted)") == parent_image):
            found.append(FileFound("parent-image", f"/proc/{process.ppid}/exe", parent_exe))
        for path in command_line_paths(process.command_line, process.cwd):
            found.append(FileFound("command-line", path, path))
    for key in ("CommandLine", "ParentCommandLine"):
        if data.get(key):
            cwd = str(data.get("CurrentDirectory") or (process.cwd if process else "/"))
            found.extend(FileFound("command-line", p, p) for p in command_line_paths(str(data[key]), cwd))
    for key in FILE_FIELDS:
        value = str(data.get(key, ""))
        if value.startswith("/"):
            found.append(FileFound(f"event:{key}", value, value))
    unique: dict[str, FileFound] = {}
    for f in found:
        unique.setdefault(f.display_path, f)
    return list(unique.values())


def _on_disk(f: FileFound) -> FileFound | None:
    """For a file found through ``/proc/PID/exe``, the same file opened by its path (for a process
    that exits before the copy: short-lived tools are the common case), unless it was deleted."""
    if not f.open_path.startswith("/proc/") or not f.display_path.startswith("/"):
        return None
    if f.display_path.endswith(" (deleted)"):
        return None
    return FileFound(f.reason, f.display_path, f.display_path)


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


class FileDumper:
    """Copies candidate files into an ArtifactStore, once per sha256."""

    def __init__(self, store: ArtifactStore, *, max_file_bytes: int = 100 << 20) -> None:
        self.store = store
        self.max_file_bytes = max_file_bytes
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def dump(self, process: ProcessLike | None, event: Mapping[str, Any], directory: Path) -> list[Artifact]:
        """Copy what ``collect`` finds into ``directory``; unreadable files are logged and skipped."""
        artifacts = []
        for f in collect(process, event):
            if f.open_path.startswith(_PSEUDO_ROOTS) and not f.open_path.endswith("/exe"):
                continue
            try:
                artifacts.extend(self._dump_one(f, directory))
            except OSError as exc:
                on_disk = _on_disk(f)
                if on_disk is None:
                    logger.info("filedump: skipping %s: %s", f.display_path, exc)
                    continue
                try:  # the process ended after it was found: its binary is still at its path
                    artifacts.extend(self._dump_one(on_disk, directory))
                except OSError as exc2:
                    logger.info("filedump: skipping %s: %s; then %s", f.display_path, exc, exc2)
        return artifacts

    def _dump_one(self, f: FileFound, directory: Path) -> list[Artifact]:
        fd = os.open(f.open_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > self.max_file_bytes:
                return []
            digest = sha256_fd(fd)
            name = os.path.basename(f.display_path.removesuffix(" (deleted)")) or "file"
            meta = {"reason": f.reason, "original_path": f.display_path, "file_size": st.st_size}
            out = [
                self.store.write_bytes(directory, name + ".sha256", f"{digest}\n".encode(), "sha256", meta)
            ]
            with self._lock:
                if digest in self._seen:
                    return out
                self._seen.add(digest)
            out.append(self.store.copy_fd(directory, f"{digest[:16]}_{name}.bin", fd, "file", meta))
            return out
        finally:
            os.close(fd)
