"""In-memory matching over the EVTX corpus (16 818 events that do not repeat), first pass cold.

Usage: .venv/bin/python bench/evtx_match.py
Decodes every file of ../shared/data/evtx/manifest.tsv with vigil.events.evtx, then times
Engine.match over all events three times (the first pass has every cache cold). Prints one JSON
object. Needs the EVTX reader (vigil.events.evtx).
"""

from __future__ import annotations

import csv
import gc
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vigil.engine import Engine  # noqa: E402

DATA = ROOT / "../shared/data"


def main() -> None:
    try:
        from vigil.events.evtx import iter_evtx  # type: ignore[attr-defined,unused-ignore]
    except ImportError as err:
        print(json.dumps({"bench": "evtx-match", "error": f"EVTX reader not available: {err}"}))
        return
    engine = Engine(show_attack=True)
    engine.load_path(DATA / "gene-rules/rules")
    engine.compile(lazy=False)  # every bucket now: the timed matching generates no code
    with open(DATA / "evtx/manifest.tsv", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))[1:]
    t0 = time.process_time()
    events = [ev for r in rows for ev in iter_evtx(str(DATA / "evtx/evtx" / r[0])) if isinstance(ev, dict)]
    decode_s = time.process_time() - t0
    gc.disable()
    passes = []
    positives = 0
    for _ in range(3):
        t = time.process_time()
        positives = sum(1 for ev in events if engine.match(ev).signature)
        passes.append(round(len(events) / (time.process_time() - t)))
    gc.enable()
    print(
        json.dumps(
            {
                "bench": "evtx-match",
                "files": len(rows),
                "events": len(events),
                "positives": positives,
                "evtx_decode_events_per_s_cpu": round(len(events) / decode_s),
                "match_events_per_s_cpu_cold_then_warm": passes,
            }
        )
    )


if __name__ == "__main__":
    main()
