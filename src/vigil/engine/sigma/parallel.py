"""Compiling many Sigma files on several cores: a first load, before the rule cache has them.

Compiling a file is pure (its text and the options in, vigil's IR out), so the files are split
among forked workers, each returning what the rule cache would store (``codec``: JSON-safe data),
decoded and checked by the parent like a cache entry. The result is the same as compiling in one
process. Only used with enough files, idle CPUs (from the load average) and a single thread
(forking a process that runs other threads, like the agent after its start, could copy a lock
held by one of them); ``VIGIL_SIGMA_JOBS=N`` sets the number of workers (1: none). Any failure of
the pool falls back to compiling here.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from vigil.engine.sigma.codec import CacheFormatError, decode_file_result, encode_file_result
from vigil.engine.sigma.errors import Rejection
from vigil.engine.sigma.options import CompileOptions
from vigil.engine.sigma.results import FileResult

__all__ = ["MIN_FILES", "compile_in_parallel"]

logger = logging.getLogger(__name__)

#: Fewer files than this compile in the calling process (a pool costs about 0.1 s to start).
MIN_FILES = 64
ENV_JOBS = "VIGIL_SIGMA_JOBS"

Job = tuple[str | None, str, Rejection | None]  # text, path, why it could not be read


def _workers() -> int:
    """``VIGIL_SIGMA_JOBS``, else the CPUs left idle by the rest of the machine (at most 4): on a
    busy machine more workers only add their start-up and the decoding to the CPU spent."""
    env = os.environ.get(ENV_JOBS, "").strip()
    if env.isdigit():
        return int(env)
    cpus = len(os.sched_getaffinity(0))
    return min(4, cpus, math.floor(cpus - os.getloadavg()[0] + 1))


def _compile_chunk(jobs: list[Job], opts: CompileOptions | None) -> list[dict[str, Any] | None]:
    from vigil.engine.sigma.parsing import compile_file

    out: list[dict[str, Any] | None] = []
    for text, path, problem in jobs:
        result = compile_file(text, path, problem, opts)
        out.append(None if result is None else encode_file_result(result, path))
    return out


def compile_in_parallel(jobs: Sequence[Job], opts: CompileOptions | None) -> list[FileResult | None] | None:
    """Each job's result (None for a file holding correlation rules), in order; or None when the
    jobs are better (or only) compiled in the calling process."""
    workers = _workers()
    if workers < 2 or len(jobs) < MIN_FILES or threading.active_count() > 1:
        return None
    import vigil.engine.sigma.parsing  # noqa: F401 - imported once, before forking

    size = max(8, len(jobs) // (workers * 4))
    chunks = [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            encoded = [r for chunk in pool.map(_compile_chunk, chunks, [opts] * len(chunks)) for r in chunk]
        return [
            None if e is None else decode_file_result(e, job[1]) for e, job in zip(encoded, jobs, strict=True)
        ]
    except (OSError, RuntimeError, CacheFormatError) as err:  # BrokenProcessPool is a RuntimeError
        logger.debug("compiling Sigma files in parallel failed (%s): compiling them here", err)
        return None
