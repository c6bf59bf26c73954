"""Uploads artifacts from the dump directory to the manager and deletes what was confirmed.

Layout (WHIDS): ``<dump_dir>/<{process-guid}>/<event-hash>/<file>``. A file is uploaded in 3 MiB
chunks (``POST /upload/dumps``) and removed only after its last chunk was accepted. Files over the
size cap are deleted unsent and counted, as WHIDS does, so one huge core dump cannot block the
queue forever. Hidden and temporary files (``.name``, ``*.tmp``, ``*.part``) are still being written
and are left for the next pass.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from vigil.agent.link.client import EndpointClient, Fatal, Retryable

logger = logging.getLogger(__name__)

__all__ = ["ArtifactUploader", "UploadStats"]

_GUID = re.compile(r"\{[0-9A-Fa-f-]{36}\}")
_EVENT_HASH = re.compile(r"[0-9a-f]{32,128}")


@dataclass
class UploadStats:
    uploaded: int = 0
    failed: int = 0
    too_large: int = 0
    last_error: str = ""


class ArtifactUploader:
    def __init__(
        self, client: EndpointClient, dump_dir: Path, *, max_upload_bytes: int = 100 * 1024 * 1024
    ) -> None:
        self.client = client
        self.dump_dir = dump_dir
        self.max_upload_bytes = max_upload_bytes
        self.stats = UploadStats()

    def pending(self) -> list[tuple[str, str, Path]]:
        """(guid, event hash, file) for every complete artifact, oldest directories first."""
        out: list[tuple[str, str, Path]] = []
        if not self.dump_dir.is_dir():
            return out
        for guid_dir in sorted(self.dump_dir.iterdir()):
            if not guid_dir.is_dir() or not _GUID.fullmatch(guid_dir.name):
                continue
            for hash_dir in sorted(guid_dir.iterdir()):
                if not hash_dir.is_dir() or not _EVENT_HASH.fullmatch(hash_dir.name):
                    continue
                for file in sorted(hash_dir.iterdir()):
                    if (
                        file.is_file()
                        and not file.is_symlink()
                        and not file.name.startswith(".")
                        and file.suffix not in (".tmp", ".part")
                    ):
                        out.append((guid_dir.name, hash_dir.name, file))
        return out

    def run_once(self) -> int:
        """Upload every pending artifact; returns how many were uploaded."""
        done = 0
        for guid, event_hash, path in self.pending():
            size = path.stat().st_size
            if size > self.max_upload_bytes:
                logger.warning(
                    "artifact %s is %d bytes, over the %d byte cap: deleted unsent",
                    path,
                    size,
                    self.max_upload_bytes,
                )
                path.unlink(missing_ok=True)
                self.stats.too_large += 1
                continue
            try:
                self.client.upload(path, guid=guid, event_hash=event_hash)
            except Retryable as exc:
                self.stats.failed += 1
                self.stats.last_error = str(exc)
                return done  # the manager is unreachable: try the rest next time
            except Fatal as exc:
                self.stats.failed += 1
                self.stats.last_error = str(exc)
                logger.error("manager refused artifact %s: %s", path, exc)
                continue
            path.unlink(missing_ok=True)
            self.stats.uploaded += 1
            done += 1
        self._prune_empty_dirs()
        return done

    def _prune_empty_dirs(self) -> None:
        for directory in sorted(self.dump_dir.glob("*/*"), reverse=True):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        for directory in self.dump_dir.glob("*"):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
