"""Detections search latency over a large store: p50/p95/p99 of GET /endpoints/{uuid}/detections.

    .venv/bin/python bench/manager_search.py [--events 1000000] [--endpoints 50] [--queries 300]

The store is filled directly (WHIDS sample events, 2 % detections, spread over 50 endpoints and 7
days), then a real manager serves it over TLS and one keep-alive client sends searches: a random
endpoint and a random 1 to 24 hour window inside the 7 days, default limit (1000), newest first
for half of them. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import httpx
import orjson

from bench.manager_common import ManagerProcess, sample_events
from vigil.client import pinned_ssl_context
from vigil.manager.keys import hash_key, new_key
from vigil.manager.store import EventRow, SQLiteStore
from vigil.manager.times import format_ns

DAY = 86_400_000_000_000
START = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def fill(db: Path, total: int, endpoints: list[str]) -> float:
    store = SQLiteStore(db, sync_full=False)
    for uuid in endpoints:
        store.create_endpoint({"uuid": uuid, "key_hash": hash_key(new_key())})
    samples = [orjson.dumps(e) for e in sample_events()]
    rng = random.Random(7)
    began = time.perf_counter()
    batch: dict[str, list[EventRow]] = {u: [] for u in endpoints}
    for n in range(total):
        uuid = endpoints[n % len(endpoints)]
        detection = rng.random() < 0.02
        sigs = (f"Rule{rng.randrange(40)}",) if detection else ()
        ts = START + rng.randrange(7 * DAY)
        batch[uuid].append(
            EventRow(
                f"{n:040x}",
                ts,
                "Microsoft-Windows-Sysmon/Operational",
                1 + n % 20,
                8 if detection else 0,
                sigs,
                samples[n % len(samples)],
            )
        )
        if len(batch[uuid]) >= 2000:
            store.ingest(uuid, batch[uuid], {})
            batch[uuid] = []
    for uuid, rows in batch.items():
        if rows:
            store.ingest(uuid, rows, {})
    store.close()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    manager = ManagerProcess()
    try:
        manager.init()
        endpoints = [f"00000000-0000-4000-8000-{i:012x}" for i in range(args.endpoints)]
        fill_s = fill(manager.data / "manager.db", args.events, endpoints)
        manager.start()
        rng = random.Random(11)
        latencies = []
        returned = []
        headers = {"X-Api-Key": manager.admin_key}
        with httpx.Client(
            base_url=manager.admin_url, verify=pinned_ssl_context(manager.cert), headers=headers
        ) as http:
            http.get("/stats").raise_for_status()
            for q in range(args.queries):
                uuid = rng.choice(endpoints)
                width = rng.randrange(1, 25) * 3_600_000_000_000
                since = START + rng.randrange(7 * DAY - width)
                params = {"since": format_ns(since), "until": format_ns(since + width)}
                if q % 2:
                    params["order"] = "desc"
                t0 = time.perf_counter()
                response = http.get(f"/endpoints/{uuid}/detections", params=params)
                latencies.append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
                returned.append(len(response.json()["data"]))
        rss = manager.peak_rss_mb()
    finally:
        manager.stop()
    cuts = statistics.quantiles(latencies, n=100)
    print(
        json.dumps(
            {
                "name": "manager_search",
                "events": args.events,
                "endpoints": args.endpoints,
                "queries": args.queries,
                "fill_seconds": round(fill_s, 1),
                "p50_ms": round(cuts[49], 2),
                "p95_ms": round(cuts[94], 2),
                "p99_ms": round(cuts[98], 2),
                "max_ms": round(max(latencies), 2),
                "mean_results": round(statistics.mean(returned), 1),
                "peak_rss_mb": rss,
            }
        )
    )


if __name__ == "__main__":
    main()
