"""Command polling at fleet scale: N simulated endpoints each GET /commands every 5 s over TLS.

    .venv/bin/python bench/manager_commands.py [--endpoints 2000] [--seconds 30] [--connections 200]

Every endpoint is enrolled for real (its own uuid and key); 5 % of them get a queued command, so
some polls take the write path (mark sent). Polls are spread evenly over each 5 s period and
share a pool of keep-alive TLS connections (as behind a reverse proxy). Latency is measured per
request. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx

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


async def poll(
    manager: ManagerProcess, endpoints: list[tuple[str, str]], seconds: float, connections: int
) -> tuple[list[tuple[float, float]], dict[int, int]]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies: list[tuple[float, float]] = []
    statuses: dict[int, int] = {}
    period = 5.0
    async with httpx.AsyncClient(
        base_url=manager.endpoint_url, verify=pinned_ssl_context(manager.cert), limits=limits, timeout=30
    ) as http:
        start = time.perf_counter()

        async def agent(index: int, uuid: str, key: str) -> None:
            headers = {"X-Endpoint-Uuid": uuid, "X-Api-Key": key, "X-Endpoint-Hostname": f"host-{index}"}
            await asyncio.sleep(period * index / len(endpoints))
            while time.perf_counter() - start < seconds:
                t0 = time.perf_counter()
                response = await http.get("/commands", headers=headers)
                latencies.append((t0 - start, (time.perf_counter() - t0) * 1000))
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                await asyncio.sleep(max(0.0, period - (time.perf_counter() - t0)))

        await asyncio.gather(*(agent(i, u, k) for i, (u, k) in enumerate(endpoints)))
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
        latencies, statuses = asyncio.run(poll(manager, endpoints, args.seconds, args.connections))
        elapsed = time.perf_counter() - began
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
                "peak_rss_mb": rss,
            }
        )
    )


if __name__ == "__main__":
    main()
