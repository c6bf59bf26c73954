"""A fast exec load generator for the agent benchmarks: a tiny C program built at run time.

Python spawners top out near 1 000 execs/s on 2 cores (interpreter overhead per spawn), so the
benchmarks that ask for 2 000 execs/s compile this generator with the system C compiler into a
temporary directory. It runs ``BINARY TAG-N`` for N = 0..COUNT-1 with ``posix_spawn`` (glibc uses
``clone(CLONE_VM|CLONE_VFORK)``) on an absolute schedule (``clock_nanosleep(TIMER_ABSTIME)``), so
the rate does not drift, reaps children without blocking the schedule, and writes one line per
child: ``PID N SPAWN_TIME_NS`` (CLOCK_REALTIME, taken just before the spawn).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["ExecGen", "Spawn", "build"]

_SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* execgen BINARY TAG COUNT RATE START_REALTIME_NS WORKERS OUT_PREFIX */
static int worker(const char *binary, const char *tag, long count, double rate,
                  long long start_rt, int workers, int wid, const char *out_prefix) {
    long mine = count > wid ? (count - wid + workers - 1) / workers : 0;
    int *pids = calloc(mine + 1, sizeof(int));
    long *ns = calloc(mine + 1, sizeof(long));
    long long *ts = calloc(mine + 1, sizeof(long long));
    if (!pids || !ns || !ts) { perror("execgen: calloc"); return 1; }
    /* the schedule is in CLOCK_MONOTONIC, anchored to the shared realtime start */
    long long mono0 = now_ns(CLOCK_MONOTONIC) + (start_rt - now_ns(CLOCK_REALTIME));
    char arg[256];
    char *argv[3] = {(char *)binary, arg, NULL};
    long k = 0, live = 0;
    for (long n = wid; n < count; n += workers, k++) {
        long long due = mono0 + (long long)((double)n * 1e9 / rate);
        struct timespec dts = {due / 1000000000LL, due % 1000000000LL};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dts, NULL) == EINTR) {}
        snprintf(arg, sizeof arg, "%s-%ld", tag, n);
        ts[k] = now_ns(CLOCK_REALTIME);
        pid_t pid;
        int rc = posix_spawn(&pid, binary, NULL, NULL, argv, environ);
        if (rc != 0) { fprintf(stderr, "execgen: posix_spawn %s: %s\n", binary, strerror(rc)); return 1; }
        pids[k] = pid;
        ns[k] = n;
        live++;
        while (live > 0 && waitpid(-1, NULL, WNOHANG) > 0) live--;
    }
    while (live > 0 && waitpid(-1, NULL, 0) > 0) live--;
    char path[4096];
    snprintf(path, sizeof path, "%s.%d", out_prefix, wid);
    FILE *f = fopen(path, "w");
    if (!f) { perror("execgen: output"); return 1; }
    for (long i = 0; i < k; i++) fprintf(f, "%d %ld %lld\n", pids[i], ns[i], ts[i]);
    return fclose(f) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: execgen BINARY TAG COUNT RATE START_REALTIME_NS WORKERS OUT_PREFIX\n");
        return 2;
    }
    const char *binary = argv[1], *tag = argv[2], *out = argv[7];
    long count = atol(argv[3]);
    double rate = atof(argv[4]);
    long long start = atoll(argv[5]);
    int workers = atoi(argv[6]);
    if (count < 0 || rate <= 0 || workers < 1 || workers > 64) {
        fprintf(stderr, "execgen: bad COUNT, RATE or WORKERS\n");
        return 2;
    }
    pid_t kids[64];
    for (int w = 0; w < workers; w++) {
        kids[w] = fork();
        if (kids[w] < 0) { perror("execgen: fork"); return 1; }
        if (kids[w] == 0) _exit(worker(binary, tag, count, rate, start, workers, w, out));
    }
    int failed = 0;
    for (int w = 0; w < workers; w++) {
        int status;
        if (waitpid(kids[w], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = 1;
    }
    return failed;
}
"""


@dataclass(frozen=True)
class Spawn:
    pid: int
    n: int
    t_ns: int  # CLOCK_REALTIME just before posix_spawn


def build(directory: str) -> str:
    """Compile the generator into `directory`; the path of the executable."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise RuntimeError("the exec generator needs a C compiler (gcc or cc) on PATH")
    src = os.path.join(directory, "execgen.c")
    exe = os.path.join(directory, "execgen")
    with open(src, "w") as f:
        f.write(_SOURCE)
    subprocess.run([cc, "-O2", "-Wall", "-o", exe, src], check=True)
    return exe


class ExecGen:
    """One generator run: start it, then `wait()` for the spawns it made."""

    def __init__(self, exe: str, directory: str) -> None:
        self.exe = exe
        self.directory = directory

    def start(
        self, binary: str, tag: str, count: int, rate: float, start_ns: int, workers: int = 1
    ) -> subprocess.Popen[bytes]:
        """Begin spawning at `start_ns` (CLOCK_REALTIME); `binary TAG-N` for N in range(count)."""
        self._prefix = os.path.join(self.directory, f"spawned-{tag}")
        self._workers = workers
        argv = [
            self.exe,
            binary,
            tag,
            str(count),
            repr(float(rate)),
            str(start_ns),
            str(workers),
            self._prefix,
        ]
        self._proc = subprocess.Popen(argv)
        return self._proc

    def wait(self) -> list[Spawn]:
        if self._proc.wait() != 0:
            raise RuntimeError(f"the exec generator failed (exit status {self._proc.returncode})")
        out = []
        for w in range(self._workers):
            path = f"{self._prefix}.{w}"
            with open(path) as f:
                for line in f:
                    pid, n, t = line.split()
                    out.append(Spawn(int(pid), int(n), int(t)))
            os.unlink(path)
        out.sort(key=lambda s: s.n)
        return out
