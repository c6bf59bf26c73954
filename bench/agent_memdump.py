"""Memory-dump throughput: ELF core of test processes (a ``sleep`` and a Python process holding
``--mb`` MiB), raw and through the gzip artifact store. The targets keep running.

Usage (root): .venv/bin/python bench/agent_memdump.py [--mb 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vigil.agent.actions.artifacts import ArtifactStore
from vigil.agent.actions.memdump import write_core


class Null:
    def write(self, data: bytes) -> int:
        return len(data)


def measure(pid: int, store: ArtifactStore) -> dict:
    t0 = time.perf_counter()
    summary = write_core(pid, Null())
    raw = time.perf_counter() - t0
    directory = store.event_dir("", {"pid": pid})
    t0 = time.perf_counter()
    with store.writer(directory, f"{pid}.core", "memdump") as w:
        write_core(pid, w)
    gz = time.perf_counter() - t0
    assert w.artifact is not None
    return {
        "regions": summary.regions,
        "memory_mb": round(summary.memory_bytes / 2**20, 1),
        "raw_seconds": round(raw, 3),
        "raw_mb_per_s": round(summary.memory_bytes / 2**20 / raw, 1),
        "gzip_seconds": round(gz, 3),
        "stored_mb": round(Path(w.artifact.path).stat().st_size / 2**20, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=64)
    args = ap.parse_args()
    code = f"import os,time; b = bytearray(os.urandom(1 << 20) * {args.mb}); print('ready', flush=True); time.sleep(600)"
    sleeper = subprocess.Popen(["sleep", "600"])
    big = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    t0 = time.perf_counter()
    try:
        assert big.stdout is not None and big.stdout.readline().strip() == "ready"
        with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
            store = ArtifactStore(tmp)
            small = measure(sleeper.pid, store)
            large = measure(big.pid, store)
        alive = sleeper.poll() is None and big.poll() is None
    finally:
        for p in (sleeper, big):
            p.kill()
            p.wait()
        if big.stdout is not None:
            big.stdout.close()
    total = small["memory_mb"] + large["memory_mb"]
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "name": "agent_memdump",
                "events": 2,
                "seconds": round(seconds, 3),
                "events_per_s": round(2 / seconds, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "sleep": small,
                "python": large,
                "dumped_mb": round(total, 1),
                "targets_alive_after": alive,
            }
        )
    )


if __name__ == "__main__":
    main()
