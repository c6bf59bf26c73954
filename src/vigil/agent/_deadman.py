"""Containment dead-man switch: lifts host isolation when the agent stops proving it is alive.

Started detached by ``containment.contain(..., deadman=PATH)``; run as
``python -m vigil.agent._deadman SETTINGS_JSON``. Every ``interval`` seconds it checks:
- the isolation table is gone (the agent uncontained): exit;
- the pid file names another dead man (a newer ``contain``): exit;
- the heartbeat file is older than ``seconds`` or missing: ``uncontain`` and exit.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

from vigil.agent.containment import is_contained, uncontain

logger = logging.getLogger("vigil.agent.deadman")


def _expired(heartbeat: str, seconds: float) -> bool:
    try:
        return time.time() - os.stat(heartbeat).st_mtime > seconds
    except FileNotFoundError:
        return True


def main(argv: list[str] | None = None) -> int:
    settings = json.loads((argv or sys.argv[1:])[0])
    heartbeat, seconds, netns = settings["heartbeat"], float(settings["seconds"]), settings.get("netns")
    pidfile = heartbeat + ".deadman"
    interval = max(0.5, min(5.0, seconds / 4))
    while True:
        time.sleep(interval)
        try:
            with open(pidfile) as f:
                if f.read().strip() != str(os.getpid()):
                    return 0
        except FileNotFoundError:
            return 0
        if not is_contained(netns=netns):
            return 0
        if _expired(heartbeat, seconds):
            logger.warning("no heartbeat for %ss: lifting containment (netns %s)", seconds, netns or "host")
            uncontain(netns=netns)
            return 0


if __name__ == "__main__":
    sys.exit(main())
