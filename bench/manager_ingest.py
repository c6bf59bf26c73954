"""Ingest throughput: gzip NDJSON batches from concurrent agents into a real manager (TLS, SQLite).

    .venv/bin/python bench/manager_ingest.py [--events 500000] [--clients 10] [--batch 1000]

Events are the WHIDS sample events with a unique agent hash each (as vigil agents send). All batches
are built and compressed before the clock starts; the clock stops when the last batch is answered
200, i.e. durably committed. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import sqlite3
import time

import httpx
import orjson

from bench.manager_common import ManagerProcess, sample_events
from vigil.client import pinned_ssl_context


def build_batches(total: int, batch: int) -> list[bytes]:
    events = sample_events()
    batches = []
    n = 0
    while n < total:
        lines = []
        for _ in range(min(batch, total - n)):
            event = events[n % len(events)]
            inner = dict(event["Event"])
            inner["EdrData"] = {"Event": {"Hash": f"{n:040x}"}}
            lines.append(orjson.dumps({"Event": inner}))
            n += 1
        batches.append(gzip.compress(b"\n".join(lines) + b"\n", compresslevel=6))
    return batches


async def run_clients(manager: ManagerProcess, batches: list[bytes], clients: int) -> float:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in batches:
        queue.put_nowait(body)
    ctx = pinned_ssl_context(manager.cert)
    headers = {
        "X-Endpoint-Uuid": manager.endpoint["uuid"],
        "X-Api-Key": manager.endpoint["key"],
        "X-Endpoint-Hostname": "bench",
        "Content-Encoding": "gzip",
    }

    async def client() -> None:
        async with httpx.AsyncClient(
            base_url=manager.endpoint_url, verify=ctx, headers=headers, timeout=120
        ) as http:
            await http.get("/key")
            while not queue.empty():
                body = queue.get_nowait()
                response = await http.post("/logs", content=body)
                response.raise_for_status()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--no-fsync", action="store_true", help="synchronous=NORMAL instead of FULL")
    args = parser.parse_args()
    manager = ManagerProcess(sync_full=not args.no_fsync)
    try:
        manager.init()
        batches = build_batches(args.events, args.batch)
        manager.start()
        cpu0 = manager.cpu_seconds()
        seconds = asyncio.run(run_clients(manager, batches, args.clients))
        cpu = manager.cpu_seconds() - cpu0
        rss = manager.peak_rss_mb()
        conn = sqlite3.connect(manager.data / "manager.db")
        stored = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        conn.close()
    finally:
        manager.stop()
    print(
        json.dumps(
            {
                "name": "manager_ingest",
                "events": args.events,
                "stored": stored,
                "seconds": round(seconds, 3),
                "events_per_s": round(args.events / seconds),
                "clients": args.clients,
                "batch": args.batch,
                "wire_mb": round(sum(len(b) for b in batches) / 1e6, 1),
                "fsync": not args.no_fsync,
                "server_cpu_s": round(cpu, 2),
                "peak_rss_mb": rss,
            }
        )
    )


if __name__ == "__main__":
    main()
