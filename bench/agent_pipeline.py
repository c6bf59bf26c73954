"""Benchmark: events through the agent pipeline (intake queue -> engine -> standalone output).

    python bench/agent_pipeline.py [--events 200000] [--rules 200] [--log-all] [--rate 2000]

Synthetic Linux ProcessCreate events go through a real Pipeline with the real engine (``--rules``
Gene rules on Image and CommandLine, 1 event in 1000 matches) and the JSON-lines output in a temporary
directory. Sources submit as fast as they can; events the bounded queue refuses are counted. Prints
one JSON object: throughput, per-event pipeline latency (intake to output) and drops.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import threading
import time
from typing import Any

from vigil.agent.detection import Detector
from vigil.agent.outputs import JsonlOutput
from vigil.agent.pipeline import Pipeline
from vigil.engine import Engine


def rules(n: int) -> str:
    out = []
    for i in range(n):
        out.append(
            json.dumps(
                {
                    "Name": f"BenchRule{i}",
                    "Meta": {
                        "Events": {"Linux-Sysmon/Operational": [1]},
                        "Criticality": 5 + i % 6,
                        "Schema": "2.0.0",
                    },
                    "Matches": [
                        f"$im: Image ~= '/opt/bench/evil{i}$'",
                        f"$cl: CommandLine ~= '--payload{i}\\b'",
                    ],
                    "Condition": "$im or $cl",
                }
            )
        )
    return "\n".join(out)


def event(i: int) -> dict[str, Any]:
    hit = i % 1000 == 0
    image = f"/opt/bench/evil{i % 50}" if hit else f"/usr/bin/tool{i % 97}"
    return {
        "Event": {
            "System": {"Channel": "Linux-Sysmon/Operational", "EventID": 1, "Computer": "bench"},
            "EventData": {
                "ProcessId": str(10_000 + i % 30_000),
                "ParentProcessId": "1",
                "Image": image,
                "CommandLine": f"{image} --flag {i}",
                "CurrentDirectory": "/home/user",
                "User": "user",
            },
        }
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--log-all", action="store_true")
    parser.add_argument("--rate", type=float, default=0.0, help="events/s offered (0: as fast as possible)")
    parser.add_argument("--queue", type=int, default=65536, help="pipeline.queue_size")
    args = parser.parse_args()

    engine = Engine(show_attack=True, show_actions=True)
    engine.load_text(rules(args.rules), source="<bench>")
    events = [event(i) for i in range(args.events)]
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        out = JsonlOutput(tmp)
        pipe = Pipeline(
            Detector(engine, log_all=args.log_all),
            [out],
            is_self=lambda e: False,
            stats_interval=3600,
            queue_size=args.queue,
        )
        pipe.start()
        start = time.perf_counter()

        def produce() -> None:
            for i, e in enumerate(events):
                if args.rate:
                    delay = start + i / args.rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                pipe.submit(e, act=False)

        producer = threading.Thread(target=produce)
        producer.start()
        producer.join()
        drained = pipe.drain(timeout=600)
        seconds = time.perf_counter() - start
        snap = pipe.board.snapshot(reset=False)
        pipe.stop()
    result = {
        "name": "agent_pipeline",
        "events": args.events,
        "rules": args.rules,
        "log_all": args.log_all,
        "offered_rate": args.rate or "max",
        "seconds": round(seconds, 3),
        "events_per_s": round(args.events / seconds, 1),
        "alerts": snap["detect"]["emitted"],
        "dropped": snap["intake"]["dropped"],
        "drained": drained,
        "latency_mean_ms": snap["pipeline"]["latency"]["mean_ms"],
        "latency_p99_ms": snap["pipeline"]["latency"]["p99_ms"],
        "detect_mean_ms": snap["detect"]["latency"]["mean_ms"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
