"""`vigil scan --jobs N`: forked workers scan independent blocks; the parent writes them in order.

A block is about 2 MiB of a JSON-lines file (256 KiB in its last 4 MiB, so that the workers finish
together), cut before a line that starts with ``{``, or a few 64 KiB EVTX chunks (chunks are
independent: each holds its own string and template tables). A worker reads its block itself (by
offset; only stdin and pipes are read by the parent and sent), decodes and matches it in small
batches so the decoded events stay in the CPU cache as in the one-process path, and sends back the
rendered output bytes, its counts and its errors (``vigil.cli.scan_pool``: pipes, no threads). The
parent plans blocks from file sizes alone, and the output goes from the workers' pipes to the output
file in input order, spliced by the pool (the parent reads only the counts): it decodes and renders
nothing.

Bad-line errors come back with line numbers relative to their block; the parent adds the lines of
the blocks before it, so every message names the same file:line as one job does.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import os
import stat
import sys
from collections import Counter
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

import orjson

from vigil.events.jsonl import LineError, iter_stream

if TYPE_CHECKING:
    from vigil.cli.scan import Progress, Scanner, Stats

BLOCK_BYTES = 2 << 20  # a unit of work: fewer blocks cost the parent less, the last one leaves a core idle
BATCH_LINES = 128  # events decoded and matched at a time: small enough to stay in the CPU cache
EVTX_BLOCK_CHUNKS = 8  # 64 KiB EVTX chunks per unit of work (512 KiB)
WINDOW_PER_JOB = 4  # blocks in flight per worker: bounds the parent's memory for results
TAIL_BYTES = 4 << 20  # the end of a JSON-lines file is cut in smaller blocks, so that the workers
TAIL_BLOCK_BYTES = 256 << 10  # finish together instead of one waiting for the other's last 2 MiB
_BOUNDARY_STEP = 1 << 16


@dataclasses.dataclass(frozen=True, slots=True)
class LineBlock:
    """Block ``index`` of a JSON-lines input: read by the worker from the file (``data`` None: the
    lines that start in ``[start, stop)``, the parent fixing ``file_size`` so that the blocks tile the
    file), or sent as ``data``."""

    name: str
    index: int
    start: int = 0
    stop: int = 0
    file_size: int = 0
    data: bytes | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class EvtxBlock:
    """Chunk-slot ranges ``(path, start, stop)`` of one or more ``.evtx`` files, in input order."""

    segments: tuple[tuple[str, int, int], ...]


@dataclasses.dataclass(slots=True)
class BlockResult:
    """What a worker sends back: rendered output bytes, counts, errors, and lines in the block."""

    output: bytes
    stats: Stats
    errors: list[LineError | str]
    lines: int = 0
    first: bool = False  # the first block of a JSON-lines input: line numbers start again


_WORKER: Scanner | None = None


def run_parallel(
    scanner: Scanner, args: argparse.Namespace, out_stream: IO[bytes], stats: Stats, progress: Progress
) -> None:
    """Scan ``args.inputs`` with ``args.jobs`` forked workers; output and errors in input order."""
    from vigil.cli.scan_pool import Pool, WorkerDied

    global _WORKER
    _WORKER = scanner  # inherited by the forked workers, with the compiled rules
    base = 0  # lines of the current JSON-lines input before the next result
    sink = _sink(out_stream)
    try:
        with Pool(args.jobs, _work_apart) as pool:
            window = max(2, args.jobs * WINDOW_PER_JOB)
            jobs = (_job_message(job) for job in _plan(args.inputs))
            for message, output in pool.results(jobs, window=window, sink=sink):
                result = _result_from(message)
                if result.first:
                    base = 0
                for error in result.errors:
                    where = (
                        dataclasses.replace(error, line=error.line + base)
                        if isinstance(error, LineError)
                        else error
                    )
                    print(f"vigil scan: {where}", file=sys.stderr)
                base += result.lines
                out_stream.write(output)
                stats.add(result.stats)
                progress.update(stats)
    except WorkerDied:
        raise OSError("a --jobs worker process died (killed, or out of memory?)") from None


def _sink(out_stream: IO[bytes]) -> int | None:
    """The file descriptor under ``out_stream`` (flushed), for the pool to write the output to
    itself; None for a stream without one."""
    try:
        fd = out_stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None
    out_stream.flush()
    return fd


def _plan(inputs: list[str]) -> Iterator[LineBlock | EvtxBlock]:
    """The blocks of every input, in order; small EVTX files share a block."""
    segments: list[tuple[str, int, int]] = []
    slots = 0
    for path in inputs:
        if path.lower().endswith(".evtx"):
            for segment in _evtx_segments(path):
                segments.append(segment)
                slots += segment[2] - segment[1]
                if slots >= EVTX_BLOCK_CHUNKS:
                    yield EvtxBlock(tuple(segments))
                    segments, slots = [], 0
            continue
        if segments:
            yield EvtxBlock(tuple(segments))
            segments, slots = [], 0
        yield from _line_blocks(path)
    if segments:
        yield EvtxBlock(tuple(segments))


def _evtx_segments(path: str) -> Iterator[tuple[str, int, int]]:
    """Chunk-slot ranges of at most EVTX_BLOCK_CHUNKS; an unreadable or empty file still gets one
    range starting at 0, where the worker reports its error as one job would."""
    from vigil.events.evtx import chunk_count

    try:
        count = max(1, chunk_count(os.stat(path).st_size))
    except OSError:
        count = 1
    for start in range(0, count, EVTX_BLOCK_CHUNKS):
        yield path, start, min(start + EVTX_BLOCK_CHUNKS, count)


def _line_blocks(path: str) -> Iterator[LineBlock]:
    """Blocks of a JSON-lines input: by index for a regular file, as bytes for stdin or a pipe."""
    if path == "-":
        yield from _sent_blocks(sys.stdin.buffer, "<stdin>")
        return
    with open(path, "rb", buffering=0) as stream:  # an OSError here is the same as with one job
        info = os.fstat(stream.fileno())
        if not stat.S_ISREG(info.st_mode):
            yield from _sent_blocks(stream, path)
            return
    size = info.st_size
    tail = max(0, size - TAIL_BYTES)
    starts = [*range(0, tail, BLOCK_BYTES), *range(tail, size, TAIL_BLOCK_BYTES)]
    for index, (start, stop) in enumerate(zip(starts, [*starts[1:], size][: len(starts)], strict=True)):
        yield LineBlock(path, index, start=start, stop=stop, file_size=size)


def _sent_blocks(stream: IO[bytes], name: str) -> Iterator[LineBlock]:
    for index, (_, data) in enumerate(_chunks(stream)):
        yield LineBlock(name, index, data=data)


def _chunks(stream: IO[bytes], size: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Blocks of about ``size`` bytes with their first line number, cut only before a line that
    starts with ``{`` (so a value spread over lines stays in one block)."""
    size = size or BLOCK_BYTES
    first = 1
    rest = b""
    while True:
        data = stream.read(size)
        if not data:
            break
        buf = rest + data
        cut = buf.rfind(b"\n{")
        if cut < 0:
            rest = buf
            continue
        block, rest = buf[: cut + 1], buf[cut + 1 :]
        yield first, block
        first += block.count(b"\n")
    if rest:
        yield first, rest


def block_bounds(fd: int, start: int, stop: int, file_size: int) -> tuple[int, int]:
    """Start and end offsets of the block of the lines that start with ``{`` in ``[start, stop)``
    (the first block's at 0, whatever its first line): blocks of adjacent ranges tile the file."""
    return _boundary(fd, start, file_size), _boundary(fd, stop, file_size)


def _boundary(fd: int, offset: int, file_size: int) -> int:
    """The first offset at or after ``offset`` where a line starting with ``{`` begins (or the end)."""
    if offset <= 0:
        return 0
    pos = offset - 1  # the newline before ``offset`` counts
    while pos < file_size - 1:
        buf = os.pread(fd, min(_BOUNDARY_STEP, file_size - pos), pos)
        hit = buf.find(b"\n{")
        if hit >= 0:
            return pos + hit + 1
        if len(buf) < 2:
            break
        pos += len(buf) - 1  # a ``\n{`` across the step is found in the next read
    return file_size


# The pool carries plain values (marshal): jobs and results cross it as tuples.


def _job_message(job: LineBlock | EvtxBlock) -> tuple[Any, ...]:
    if isinstance(job, EvtxBlock):
        return ("evtx", job.segments)
    return ("lines", job.name, job.index, job.start, job.stop, job.file_size, job.data)


def _job_from(message: tuple[Any, ...]) -> LineBlock | EvtxBlock:
    if message[0] == "evtx":
        return EvtxBlock(tuple(tuple(segment) for segment in message[1]))
    return LineBlock(*message[1:])


def _result_message(result: BlockResult) -> tuple[Any, ...]:
    stats = result.stats
    errors = [e if isinstance(e, str) else (e.file, e.line, e.message) for e in result.errors]
    counts = (stats.events, stats.positives, stats.printed, stats.errors, dict(stats.rules))
    return (counts, errors, result.lines, result.first)


def _result_from(message: tuple[Any, ...]) -> BlockResult:
    from vigil.cli.scan import Stats

    (events, positives, printed, errors, rules), raw_errors, lines, first = message
    stats = Stats(events, positives, printed, errors, Counter(rules))
    found = [e if isinstance(e, str) else LineError(*e) for e in raw_errors]
    return BlockResult(b"", stats, found, lines=lines, first=first)


def _work_apart(message: tuple[Any, ...]) -> tuple[tuple[Any, ...], bytes]:
    """``_work`` of a job message: its result as a message, the output apart (raw bytes)."""
    result = _work(_job_from(message))
    return _result_message(result), result.output


def _work(job: LineBlock | EvtxBlock) -> BlockResult:
    """In a worker: scan one block with the inherited scanner."""
    from vigil.cli.scan import Stats

    assert _WORKER is not None
    out: list[bytes] = []
    stats = Stats()
    errors: list[Any] = []
    if isinstance(job, EvtxBlock):
        _scan_evtx(_WORKER, job, out, stats, errors)
        result = BlockResult(b"", stats, [str(e) for e in errors])  # EvtxError does not pickle
    else:
        data = job.data if job.data is not None else _read_block(job)
        lines = _scan_lines(_WORKER, data, job.name, out=out, stats=stats, errors=errors)
        result = BlockResult(b"", stats, errors, lines=lines, first=job.index == 0)
    if out:
        out.append(b"")
        result.output = b"\n".join(out)
    return result


def _read_block(job: LineBlock) -> bytes:
    fd = os.open(job.name, os.O_RDONLY)
    try:
        start, end = block_bounds(fd, job.start, job.stop, job.file_size)
        return os.pread(fd, end - start, start) if end > start else b""
    finally:
        os.close(fd)


def _scan_lines(
    scanner: Scanner, data: bytes, name: str, *, out: list[bytes], stats: Stats, errors: list[Any]
) -> int:
    """Scan a block of lines, BATCH_LINES at a time: orjson per line, the full reader from the first
    line that is not one object on (lines numbered from 1 in the block). Returns the newlines in it."""
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    # Split on \n only, like reading the file, and BATCH_LINES lines at a time: a block's 2 MiB of
    # line objects all alive at once, then all freed, emptied the allocator's arenas at the end of
    # every block, and the next block faulted the memory in again (9 000 more page faults than one
    # job over events-205k).
    stream = io.BytesIO(data)
    start = 0
    while lines := list(itertools.islice(stream, BATCH_LINES)):
        batch: list[Any] = []
        append = batch.append
        for i, line in enumerate(lines, start):
            try:
                obj = loads(line)
            except decode_error:
                if not line.strip(b" \t\r\n"):
                    continue
                obj = None
            if obj.__class__ is dict:
                append(obj)
                continue
            scanner.process(batch, out, stats, errors)
            rest = iter_stream(itertools.chain(lines[i - start :], stream), name, i + 1)  # type: ignore[arg-type]
            while batch := list(itertools.islice(rest, BATCH_LINES)):
                scanner.process(batch, out, stats, errors)
            return data.count(b"\n")
        scanner.process(batch, out, stats, errors)
        start += len(lines)
    return data.count(b"\n")


def _scan_evtx(scanner: Scanner, job: EvtxBlock, out: list[bytes], stats: Stats, errors: list[Any]) -> None:
    from vigil.events.evtx import iter_evtx

    for path, start, stop in job.segments:
        events = iter_evtx(path, chunks=range(start, stop))
        while batch := list(itertools.islice(events, BATCH_LINES)):
            scanner.process(batch, out, stats, errors)
