"""Shared by the manager benchmarks: a real `vigil manager run` subprocess on loopback (TLS on)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

SAMPLE = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "events" / "whids-sample-events.jsonl"
)


def vigil(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "vigil", "manager", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout


class ManagerProcess:
    """``vigil manager init`` + ``endpoint add`` + ``run`` in a temporary data directory."""

    def __init__(
        self, data: Path | None = None, sync_full: bool = True, ingest_workers: int | None = None
    ) -> None:
        self._tmp = None if data else tempfile.TemporaryDirectory(prefix="vigil-bench-")
        self.data = data or Path(self._tmp.name) / "manager"  # type: ignore[union-attr]
        self.sync_full = sync_full
        self.ingest_workers = ingest_workers
        self.proc: subprocess.Popen[str] | None = None

    def init(self) -> dict[str, Any]:
        out = vigil("init", "--data", str(self.data))
        self.admin_key = out.split("admin key (shown once): ")[1].split()[0]
        toml = (self.data / "manager.toml").read_text()
        if not self.sync_full:
            toml = toml.replace("sync_full = true", "sync_full = false")
        if self.ingest_workers is not None:
            toml = re.sub(r"(?m)^ingest_workers = \d+$", f"ingest_workers = {self.ingest_workers}", toml)
        (self.data / "manager.toml").write_text(toml)
        self.endpoint = json.loads(vigil("endpoint", "add", "--data", str(self.data)))
        return self.endpoint

    def start(self) -> None:
        from vigil.manager.testing import start_manager_process

        self.proc, endpoint_port, admin_port = start_manager_process(self.data)
        self.endpoint_url = f"https://127.0.0.1:{endpoint_port}"
        self.admin_url = f"https://127.0.0.1:{admin_port}"

    @property
    def cert(self) -> str:
        return str(self.data / "tls" / "cert.pem")

    def peak_rss_mb(self) -> float:
        if self.proc is None:
            return 0.0
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
        return 0.0

    def cpu_seconds(self) -> float:
        """CPU time of the manager and its live descendants (the ingest parser workers)."""
        if self.proc is None:
            return 0.0
        stats: dict[int, tuple[int, float]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (
                int(fields[1]),
                (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"),
            )
        total, todo = 0.0, [self.proc.pid]
        while todo:
            pid = todo.pop()
            total += stats.get(pid, (0, 0.0))[1]
            todo.extend(child for child, (parent, _) in stats.items() if parent == pid)
        return total

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=60)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._tmp is not None:
            self._tmp.cleanup()


def sample_events() -> list[dict[str, Any]]:
    with SAMPLE.open("rb") as handle:
        return [orjson.loads(line) for line in handle if line.strip()]
