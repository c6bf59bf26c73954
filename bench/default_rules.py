"""Benchmark: the default Linux rule set through the engine.

Run: .venv/bin/python bench/default_rules.py [--events N] [--mix cases|everyday]
Prints one JSON object. The "cases" mix is every event of tests/rules/cases plus everyday process,
network, file and DNS events that alert on nothing (about 45 % of events alert); the "everyday"
mix is only the latter, the common case on a quiet host. Events are cycled to N.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import time
from pathlib import Path
from typing import Any

from vigil.engine import Engine
from vigil.rules import default_rules_path

CASES = Path(__file__).resolve().parents[1] / "tests" / "rules" / "cases"


def _event(eid: int, data: dict[str, str]) -> dict[str, Any]:
    system = {"Channel": "Linux-Sysmon/Operational", "EventID": eid, "Computer": "bench-01"}
    return {"Event": {"System": system, "EventData": data}}


def everyday() -> list[dict[str, Any]]:
    ancestors = "/usr/lib/systemd/systemd|/usr/sbin/cron|/usr/bin/dash"
    procs = [
        ("/usr/bin/ls", "ls -la /var/www/html"),
        ("/usr/bin/git", "git fetch --prune origin"),
        ("/usr/bin/python3.11", "/usr/bin/python3 /opt/app/manage.py runjobs hourly"),
        ("/usr/sbin/logrotate", "/usr/sbin/logrotate /etc/logrotate.conf"),
        ("/usr/bin/gzip", "gzip -9 /var/log/nginx/access.log.1"),
        ("/usr/bin/systemctl", "systemctl is-active nginx"),
    ]
    events = [
        _event(
            1,
            {
                "Image": i,
                "CommandLine": c,
                "ParentImage": "/usr/bin/dash",
                "User": "root",
                "Ancestors": ancestors,
            },
        )
        for i, c in procs
    ]
    events.append(_event(3, {"Image": "/usr/bin/curl", "Initiated": "true", "DestinationIp": "198.51.100.7",
                             "DestinationPort": "443", "User": "root"}))  # fmt: skip
    events.append(
        _event(11, {"Image": "/usr/sbin/nginx", "TargetFilename": "/var/cache/nginx/proxy_temp/1/00/01"})
    )
    events.append(_event(22, {"Image": "/usr/bin/apt-get", "QueryName": "deb.debian.org", "User": "_apt"}))
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--mix",
        choices=["cases", "everyday"],
        default="cases",
        help="cases: every case event plus everyday events (~45%% alert); everyday: nothing alerts",
    )
    args = parser.parse_args()

    start = time.perf_counter()
    engine = Engine()
    engine.load_path(default_rules_path())
    load_seconds = time.perf_counter() - start

    base: list[dict[str, Any]] = []
    for case in sorted(CASES.glob("*.json")) if args.mix == "cases" else []:
        data = json.loads(case.read_text())
        base += data["fire"] + data["benign"]
    base += everyday() * 10
    events = [copy.deepcopy(base[i % len(base)]) for i in range(args.events)]

    alerts = 0
    start = time.perf_counter()
    for event in events:
        if engine.match(event).signature:
            alerts += 1
    seconds = time.perf_counter() - start
    print(json.dumps({
        "name": f"default_rules_match_{args.mix}",
        "rules": len(engine.rules),
        "events": len(events),
        "alerting_events": alerts,
        "seconds": round(seconds, 3),
        "events_per_s": round(len(events) / seconds),
        "load_seconds": round(load_seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
