"""Benchmark: CPU cost of the agent's detection step per exec event, with and without extra rules.

    .venv/bin/python bench/detector_cost.py [--events 20000] [--rounds 3] [--rules DIR]...

Builds the agent's detector (``build_engine`` + ``Detector``, as ``vigil agent run`` does) twice in
one process: with vigil's default rules, then with the default rules and every ``--rules`` directory
(default: SigmaHQ ``rules/linux``). Each is fed the same ProcessCreate events (distinct command
lines and PIDs, so no per-value cache repeats a result) and timed in CPU seconds
(``RUSAGE_SELF``), which a shared machine's load does not inflate the way it inflates wall time.
Also reports the CPU time of a full garbage collection with each detector loaded, and after
``freeze_heap`` (what the agent does once its engine is in place): the pause the pipeline thread
would take. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

LINUX_SIGMA = Path("../shared/data/sigma/rules/linux")


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def events(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        image = ("/usr/bin/curl", "/tmp/build/a.out", "/usr/bin/python3", "/bin/bash", "/usr/sbin/sshd")[
            i % 5
        ]
        out.append(
            {
                "Event": {
                    "System": {
                        "Channel": "Linux-Sysmon/Operational",
                        "EventID": 1,
                        "Computer": "bench-host",
                        "TimeCreated": {"SystemTime": f"2026-12-04T20:00:{i % 60:02d}.{i:06d}Z"},
                    },
                    "EventData": {
                        "ProcessId": str(10000 + i),
                        "ParentProcessId": "1",
                        "Image": image,
                        "CommandLine": f"{image} --run job-{i} --out /var/tmp/out{i}",
                        "CurrentDirectory": "/home/user",
                        "User": "user",
                        "ParentImage": "/usr/bin/bash",
                        "ParentCommandLine": "bash",
                        "Hashes": f"SHA256={i:064x}",
                    },
                }
            }
        )
    return out


def measure(rules_dirs: list[Path], n: int, rounds: int) -> dict[str, Any]:
    """CPU per event of the detector, and of a full collection with that detector loaded."""
    from vigil.agent.config_loader import load_config
    from vigil.agent.detection import Detector, build_engine
    from vigil.rules import default_rules_path

    with tempfile.TemporaryDirectory(prefix="vigil-detector-") as tmp:
        rules = Path(tmp) / "rules"
        rules.mkdir()
        for i, directory in enumerate([default_rules_path(), *rules_dirs]):
            shutil.copytree(directory, rules / f"{i}-{directory.name}")
        config = load_config(env={}, overrides=[f"data_dir={tmp}", f"rules.dir={rules}", "endpoint=false"])
        sample = events(n)
        t0 = cpu()
        engine = build_engine(config)
        detector = Detector.from_config(engine, config)
        detector.inspect(copy.deepcopy(sample[0]))  # the engine compiles its matcher on first use
        load_cpu = cpu() - t0
        per_event = []
        alerts = 0
        for _ in range(rounds):
            batch = copy.deepcopy(sample)
            t0 = cpu()
            for event in batch:
                alerts += detector.inspect(event).alert
            per_event.append((cpu() - t0) / len(batch) * 1e6)
        del sample, batch
        return {
            "full_gc_cpu_ms": full_collection_cpu_ms(),
            "rules": len(engine.rules),
            "load_cpu_s": round(load_cpu, 2),
            "inspect_cpu_us_per_event": round(min(per_event), 1),
            "inspect_cpu_us_rounds": [round(x, 1) for x in per_event],
            "alerts_per_round": alerts // rounds,
        }


def full_collection_cpu_ms(repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = cpu()
        gc.collect()
        times.append((cpu() - t0) * 1000)
    return round(sorted(times)[len(times) // 2], 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rules", action="append", type=Path, metavar="DIR", help="extra rule directory")
    args = parser.parse_args()
    extra = args.rules or [LINUX_SIGMA]
    started = time.time()
    default = measure([], args.events, args.rounds)
    with_extra = measure(extra, args.events, args.rounds)
    from vigil.agent.detection import freeze_heap

    freeze_heap()
    gc_frozen = full_collection_cpu_ms()
    gc.unfreeze()
    print(
        json.dumps(
            {
                "name": "detector_cost",
                "events": args.events,
                "extra_rule_dirs": [str(d) for d in extra],
                "default_rules": default,
                "with_extra_rules": with_extra,
                "added_cpu_us_per_event": round(
                    with_extra["inspect_cpu_us_per_event"] - default["inspect_cpu_us_per_event"], 1
                ),
                "full_gc_cpu_ms_after_freeze_heap": gc_frozen,
                "wall_s": round(time.time() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
