"""Command polling at fleet scale: N simulated endpoints each GET /commands every 5 s over TLS.

    .venv/bin/python bench/manager_commands.py [--endpoints 2000] [--seconds 30] [--connections 200]

Every endpoint is enrolled for real (its own uuid and key); 5 % of them get a queued command, so
some polls take the write path (mark sent). Polls are spread evenly over each 5 s period and
share keep-alive TLS connections (10 endpoints a connection by default, as behind a reverse proxy). Latency is measured per
request. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from bench.manager_common import ManagerProcess
from vigil.client import pinned_ssl_context
from vigil.manager.api.admin import build_command, create_endpoint
from vigil.manager.state import Manager


def enroll(manager: ManagerProcess, count: int) -> list[tuple[str, str]]:
    from vigil.manager.config import ManagerConfig

    state = Manager.open(ManagerConfig.load(manager.data))
    try:
        out = []
        for i in range(count):
            endpoint = create_endpoint(state)
            if i % 20 == 0:
                state.store.update_endpoint(
                    endpoint["uuid"], {"command": build_command(state, {"command-line": "ls"})}
                )
            out.append((endpoint["uuid"], endpoint["key"]))
        return out
    finally:
        state.close()


async def _connection(
    url: str,
    ssl: object,
    group: list[tuple[int, str, str]],
    total: int,
    start: float,
    seconds: float,
    out: list[tuple[float, float]],
    statuses: dict[int, int],
) -> None:
    """One keep-alive TLS connection carrying the polls of a few endpoints (minimal HTTP/1.1 client:
    the client must not be the bottleneck on a 2-core machine)."""
    host, port = url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port), ssl=ssl)
    requests = [
        (
            index,
            (
                f"GET /commands HTTP/1.1\r\nHost: {host}\r\nX-Endpoint-Uuid: {uuid}\r\nX-Api-Key: {key}\r\n"
                f"X-Endpoint-Hostname: host-{index}\r\n\r\n"
            ).encode(),
        )
        for index, uuid, key in group
    ]
    period = 5.0
    tick = 0
    try:
        while True:
            for index, request in requests:
                due = start + tick * period + period * index / total
                now = time.perf_counter()
                if due - start >= seconds:
                    return
                if due > now:
                    await asyncio.sleep(due - now)
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                out.append((t0 - start, (time.perf_counter() - t0) * 1000))
                statuses[status] = statuses.get(status, 0) + 1
            tick += 1
    finally:
        writer.close()


async def poll(
    manager: ManagerProcess, endpoints: list[tuple[str, str]], seconds: float, connections: int
) -> tuple[list[tuple[float, float]], dict[int, int]]:
    latencies: list[tuple[float, float]] = []
    statuses: dict[int, int] = {}
    ssl = pinned_ssl_context(manager.cert)
    indexed = [(i, u, k) for i, (u, k) in enumerate(endpoints)]
    groups = [indexed[c::connections] for c in range(connections)]
    start = time.perf_counter() + 1.0
    await asyncio.gather(
        *(
            _connection(manager.endpoint_url, ssl, g, len(endpoints), start, seconds, latencies, statuses)
            for g in groups
            if g
        )
    )
    return latencies, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoints", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=200)
    args = parser.parse_args()
    manager = ManagerProcess()
    try:
        manager.init()
        endpoints = enroll(manager, args.endpoints)
        manager.start()
        began = time.perf_counter()
        cpu0 = manager.cpu_seconds()
        latencies, statuses = asyncio.run(poll(manager, endpoints, args.seconds, args.connections))
        elapsed = time.perf_counter() - began
        server_cpu = manager.cpu_seconds() - cpu0
        rss = manager.peak_rss_mb()
    finally:
        manager.stop()
    every = [ms for _, ms in latencies]
    warm = [ms for at, ms in latencies if at >= 5.0]  # after each agent's first poll (TLS handshake, pin)
    cuts = statistics.quantiles(warm, n=100)
    first = statistics.quantiles(every, n=100)
    print(
        json.dumps(
            {
                "name": "manager_commands",
                "endpoints": args.endpoints,
                "requests": len(latencies),
                "seconds": round(elapsed, 1),
                "requests_per_s": round(len(latencies) / elapsed, 1),
                "p50_ms": round(cuts[49], 2),
                "p95_ms": round(cuts[94], 2),
                "p99_ms": round(cuts[98], 2),
                "max_ms": round(max(warm), 2),
                "p99_ms_incl_first_contact": round(first[98], 2),
                "statuses": statuses,
                "server_cpu_ms_per_request": round(server_cpu * 1000 / len(latencies), 3),
                "peak_rss_mb": rss,
            }
        )
    )


if __name__ == "__main__":
    main()
