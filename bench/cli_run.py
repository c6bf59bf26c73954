"""Run one command and account for its CPU: its own, its children's (e.g. `vigil scan --jobs N`
workers), and the peak RSS, on a shared machine where wall time alone says little.

The command runs under a small wrapper process, so RUSAGE_CHILDREN starts from zero for every
measurement. The wrapper waits for the command without reaping it (``waitid`` with ``WNOWAIT``) and
reads ``/proc/PID/stat`` of the finished process: utime+stime is the command's own CPU, and
cutime+cstime the CPU of the children it waited for (a process pool joins its workers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

_WRAPPER = """
import json, os, resource, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
stderr = child.stderr.read()
os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
wall = time.perf_counter() - start
with open(f"/proc/{child.pid}/stat") as handle:
    fields = handle.read().rsplit(")", 1)[1].split()
tick = os.sysconf("SC_CLK_TCK")
own = (int(fields[11]) + int(fields[12])) / tick
children = (int(fields[13]) + int(fields[14])) / tick
child.wait()
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": child.returncode, "wall_s": wall, "parent_cpu_s": own, "children_cpu_s": children,
                  "cpu_s": usage.ru_utime + usage.ru_stime, "max_rss_mb": usage.ru_maxrss / 1024,
                  "stderr": stderr.decode(errors="replace")[-2000:]}))
"""


def run_measured(command: list[str], cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Wall seconds, CPU seconds (total, the command's own, its children's), peak RSS (MB) of the
    largest process, exit code, the tail of stderr, and the 1-minute load average at the end."""
    res = subprocess.run([sys.executable, "-c", _WRAPPER, *command], capture_output=True, check=True, cwd=cwd)
    out: dict[str, Any] = json.loads(res.stdout)
    out["load_average_1m"] = os.getloadavg()[0]
    return out


def summary_line(stderr: str, key: str) -> str | None:
    """The value of ``key: value`` in `vigil scan`'s summary on stderr."""
    for line in reversed(stderr.splitlines()):
        if line.startswith(f"{key}: "):
            return line.split(": ", 1)[1]
    return None
