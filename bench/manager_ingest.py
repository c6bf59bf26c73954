"""Ingest throughput: gzip NDJSON batches from concurrent agents into a real manager (TLS, SQLite).

    .venv/bin/python -m bench.manager_ingest [--events 500000] [--clients 10] [--batch 1000]
                                             [--agent-hash] [--no-fsync] [--workers N]

Each client is its own enrolled endpoint on its own keep-alive TLS connection. Events are the WHIDS
sample events, each given its own ``TimeCreated`` (increasing, 20 µs apart, as an agent's stream),
so every event is distinct; like vigil agents they are compact JSON with sorted keys, carry no
``EdrData``, and the manager computes each hash (the SHA-1 of the line; ``--agent-hash`` adds a
SHA-1-looking ``EdrData.Event.Hash`` per event, as WHIDS agents send, and the manager then stores
the canonical form).
All batches are built and compressed before the clock starts; the clock stops when the last batch is
answered 200, i.e. durably committed.

The load generator runs on the same cores as the manager, so it is kept minimal (pre-built bodies,
a small HTTP/1.1 client) and its CPU is reported too: ``server_us_per_event`` (manager process and
its parser workers, from /proc) and ``client_us_per_event`` (this process, getrusage).
``idle_estimate_events_per_s`` is what two otherwise idle cores would sustain if CPU were the only
limit: 2 / (server + client CPU per event); it says nothing about the single writer's own limit,
which ``writer_us_per_event`` (CPU of the busiest manager thread, the writer) bounds. The other
manager threads (event loop, pool result and feeder threads) and the parser worker processes are
listed apart. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import resource
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson

from bench.manager_common import ManagerProcess, sample_events, vigil
from vigil.client import pinned_ssl_context
from vigil.manager.times import format_ns

#: First event time; each next event is 20 µs later (50 000 events/s of agent time).
START_NS = 1_780_000_000 * 1_000_000_000
STEP_NS = 20_000


def build_batches(total: int, batch: int, agent_hash: bool) -> list[bytes]:
    events = sample_events()
    batches = []
    n = 0
    while n < total:
        lines = []
        for _ in range(min(batch, total - n)):
            inner = dict(events[n % len(events)]["Event"])
            system = dict(inner.get("System") or {})
            system["TimeCreated"] = {"SystemTime": format_ns(START_NS + n * STEP_NS)}
            inner["System"] = system
            if agent_hash:
                inner["EdrData"] = {"Event": {"Hash": hashlib.sha1(b"%d" % n).hexdigest()}}
            # As vigil agents send them (vigil.agent.spool.serialize_event): compact, sorted keys.
            lines.append(orjson.dumps({"Event": inner}, option=orjson.OPT_SORT_KEYS))
            n += 1
        batches.append(gzip.compress(b"\n".join(lines) + b"\n", compresslevel=6))
    return batches


async def _client(url: str, ssl: object, endpoint: dict[str, str], bodies: list[bytes]) -> None:
    """One agent: a keep-alive TLS connection posting its batches one after the other."""
    host, port = url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port), ssl=ssl)
    head = (
        f"POST /logs HTTP/1.1\r\nHost: {host}\r\nX-Endpoint-Uuid: {endpoint['uuid']}\r\n"
        f"X-Api-Key: {endpoint['key']}\r\nX-Endpoint-Hostname: bench-{endpoint['uuid'][:8]}\r\n"
        "Content-Encoding: gzip\r\nContent-Type: application/x-ndjson\r\n"
    ).encode()
    try:
        for body in bodies:
            writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            answer = await reader.readuntil(b"\r\n\r\n")
            status = int(answer.split(b" ", 2)[1])
            length = 0
            for line in answer.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            payload = await reader.readexactly(length)
            if status != 200:
                raise RuntimeError(f"POST /logs answered {status}: {payload[:200]!r}")
    finally:
        writer.close()


async def run_clients(
    manager: ManagerProcess, endpoints: list[dict[str, str]], batches: list[bytes]
) -> float:
    ssl = pinned_ssl_context(manager.cert)
    clients = len(endpoints)
    start = time.perf_counter()
    await asyncio.gather(
        *(_client(manager.endpoint_url, ssl, endpoints[c], batches[c::clients]) for c in range(clients))
    )
    return time.perf_counter() - start


def _thread_cpu(pid: int) -> dict[int, float]:
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--agent-hash", action="store_true", help="events carry EdrData.Event.Hash")
    parser.add_argument("--no-fsync", action="store_true", help="sync_full = false (synchronous=NORMAL)")
    parser.add_argument("--workers", type=int, default=None, help="ingest_workers (default: the manager's)")
    args = parser.parse_args()
    manager = ManagerProcess(sync_full=not args.no_fsync, ingest_workers=args.workers)
    try:
        endpoints: list[dict[str, Any]] = [manager.init()]
        endpoints += [
            json.loads(vigil("endpoint", "add", "--data", str(manager.data))) for _ in range(args.clients - 1)
        ]
        batches = build_batches(args.events, args.batch, args.agent_hash)
        manager.start()
        assert manager.proc is not None
        load_before = os.getloadavg()
        cpu0, client0 = manager.cpu_seconds(), _self_cpu()
        threads0 = _thread_cpu(manager.proc.pid)
        seconds = asyncio.run(run_clients(manager, endpoints, batches))
        cpu, client = manager.cpu_seconds() - cpu0, _self_cpu() - client0
        threads = _thread_cpu(manager.proc.pid)
        load_after = os.getloadavg()
        by_thread = sorted((threads[t] - threads0.get(t, 0.0) for t in threads), reverse=True)
        rss = manager.peak_rss_mb()
        conn = sqlite3.connect(manager.data / "manager.db")
        stored = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        conn.close()
    finally:
        manager.stop()
    per_event = (cpu + client) / args.events
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
                "agent_hash": args.agent_hash,
                "ingest_workers": args.workers,
                "wire_mb": round(sum(len(b) for b in batches) / 1e6, 1),
                "fsync": not args.no_fsync,
                "server_cpu_s": round(cpu, 2),
                "server_us_per_event": round(cpu / args.events * 1e6, 1),
                "writer_us_per_event": round(by_thread[0] / args.events * 1e6, 1),
                "manager_threads_us_per_event": [round(t / args.events * 1e6, 1) for t in by_thread[:5]],
                "parser_workers_us_per_event": round((cpu - sum(by_thread)) / args.events * 1e6, 1),
                "client_us_per_event": round(client / args.events * 1e6, 1),
                "idle_estimate_events_per_s": round(2 / per_event),
                "loadavg_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
                "peak_rss_mb": rss,
            }
        )
    )


if __name__ == "__main__":
    main()
