"""Forked worker processes for `vigil scan --jobs N`: jobs out, results back in job order.

The parent forks the workers (they inherit the compiled rules) and talks to each over two pipes, one
for jobs and one for results, with one ``poll`` loop: no threads, no executor queues. A message is a
16-byte header (lengths), a ``marshal``-ed part and a raw byte payload (a block's rendered output),
so the output is never serialized. Jobs and results are plain values (tuples, lists, dicts, str,
bytes, numbers, None): ``marshal`` is built in and several times faster than ``pickle``, which is
imported only to carry an exception from a worker. Each worker has at most ``AHEAD`` jobs queued, so it never
waits for the parent between two jobs; the parent keeps at most ``window`` jobs between the last one
sent and the next result to hand out, which bounds the results it holds.

With a ``sink`` (a file descriptor), the pool writes the payloads itself, in job order: the one whose
turn it is goes from the worker's pipe to the sink with ``splice`` (no copy through the parent's
memory: for `vigil scan` that is every byte of output, which the parent otherwise reads, copies and
writes while the workers want both cores); one that comes early is read and written in its turn.

A job that raises in a worker raises the same exception in the parent when its turn comes; a worker
that dies (killed, out of memory) is a ``WorkerDied`` error.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import marshal
import os
import select
import signal
import struct
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, NoReturn

AHEAD = 2  # jobs queued per worker: the one it scans and the next
_HEADER = struct.Struct("<QQ")  # marshal-ed part length, payload length
_READ_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Python 3.10+ on Linux), spelled out for type checkers
_NO_SPLICE = (errno.EINVAL, errno.ENOSYS, errno.EBADF, errno.ESPIPE, errno.EOPNOTSUPP)


class WorkerDied(OSError):
    """A worker process ended before it sent back every result."""


Work = Callable[[Any], tuple[Any, bytes]]


class _Worker:
    """The parent's end of one worker: its pipes, the jobs it holds, bytes in and out."""

    __slots__ = ("job_fd", "jobs", "outbox", "pid", "result_fd")

    def __init__(self, pid: int, job_fd: int, result_fd: int) -> None:
        self.pid = pid
        self.job_fd = job_fd  # -1 once closed (no more jobs: the worker exits when its queue is done)
        self.result_fd = result_fd
        self.outbox = bytearray()  # job messages not yet written (a block of stdin can exceed the pipe)
        self.jobs: collections.deque[int] = collections.deque()  # sequence numbers, oldest first


class Pool:
    """``n`` forked workers running ``work(job) -> (picklable, payload bytes)``."""

    def __init__(self, n: int, work: Work) -> None:
        self._workers: list[_Worker] = []
        self._sink: int | None = None
        self._splicing = True  # until the sink refuses it
        parent_fds: list[int] = []
        try:
            for _ in range(n):
                job_r, job_w = os.pipe()
                result_r, result_w = os.pipe()
                with contextlib.suppress(OSError):  # bigger pipes: fewer wake-ups for large outputs
                    fcntl.fcntl(result_w, _F_SETPIPE_SZ, _READ_SIZE)
                pid = os.fork()
                if pid == 0:  # the worker: drop every parent end, including the other workers'
                    for fd in (*parent_fds, job_w, result_r):
                        os.close(fd)
                    _serve(work, job_r, result_w)
                os.close(job_r)
                os.close(result_w)
                os.set_blocking(job_w, False)
                parent_fds += (job_w, result_r)
                self._workers.append(_Worker(pid, job_w, result_r))
        except BaseException:
            self.close(kill=True)
            raise

    def __enter__(self) -> Pool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(kill=kind is not None)

    def close(self, kill: bool = False) -> None:
        """Close the pipes (idle workers exit at once) and reap the workers; ``kill`` ends them first."""
        for worker in self._workers:
            if kill:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
            for fd in (worker.job_fd, worker.result_fd):
                if fd >= 0:
                    os.close(fd)
            worker.job_fd = worker.result_fd = -1
        for worker in self._workers:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(worker.pid, 0)
        self._workers = []

    def results(
        self, jobs: Iterable[Any], window: int, sink: int | None = None
    ) -> Iterator[tuple[Any, bytes | bytearray]]:
        """``work(job)`` of every job, in job order. An exception raised while taking the next job
        (e.g. an input that cannot be opened) is raised after the results of the jobs before it.
        With ``sink``, the payloads are written there (in order, each before its value is handed
        out) and handed out empty."""
        source = iter(jobs)
        sent = done = 0  # jobs sent; results handed out
        ready: dict[int, tuple[bool, Any, bytearray | None]] = {}
        deferred: BaseException | None = None
        exhausted = False
        self._sink = sink
        while True:
            while not exhausted and deferred is None and sent - done < window:
                worker = min(self._workers, key=lambda w: len(w.jobs))
                if len(worker.jobs) >= AHEAD:
                    break
                try:
                    job = next(source)
                except StopIteration:
                    exhausted = True
                    break
                except Exception as exc:
                    deferred = exc
                    break
                data = marshal.dumps(job)
                worker.outbox += _HEADER.pack(len(data), 0) + data
                worker.jobs.append(sent)
                sent += 1
                self._flush(worker)
            if done in ready:  # hand out what is in order, then feed the workers again
                while done in ready:
                    ok, value, payload = ready.pop(done)
                    done += 1
                    if not ok:
                        raise value
                    if payload is None:  # already in the sink
                        yield value, b""
                    elif sink is not None:
                        _write_all(sink, [payload])
                        yield value, b""
                    else:
                        yield value, payload
                continue
            if done == sent and (exhausted or deferred is not None):
                if deferred is not None:
                    raise deferred
                return
            if exhausted:
                for worker in self._workers:
                    if worker.job_fd >= 0 and not worker.outbox:
                        os.close(worker.job_fd)
                        worker.job_fd = -1
            self._wait(ready, done)

    def _wait(self, ready: dict[int, tuple[bool, Any, bytearray | None]], turn: int) -> None:
        """Block until a worker sends a result (put in ``ready``) or can take more job bytes."""
        poller = select.poll()
        by_fd: dict[int, _Worker] = {}
        for worker in self._workers:
            if worker.jobs:
                poller.register(worker.result_fd, select.POLLIN)
                by_fd[worker.result_fd] = worker
            if worker.outbox and worker.job_fd >= 0:
                poller.register(worker.job_fd, select.POLLOUT)
                by_fd[worker.job_fd] = worker
        if not by_fd:
            raise RuntimeError("scan pool: waiting with no job out and nothing to send")
        for fd, _ in poller.poll():
            worker = by_fd[fd]
            if fd == worker.job_fd:
                self._flush(worker)
            else:
                self._receive(worker, ready, turn)

    def _flush(self, worker: _Worker) -> None:
        try:
            written = os.write(worker.job_fd, worker.outbox)
        except BlockingIOError:
            return
        except BrokenPipeError:
            raise WorkerDied(f"worker {worker.pid} ended early") from None
        del worker.outbox[:written]

    def _receive(
        self, worker: _Worker, ready: dict[int, tuple[bool, Any, bytearray | None]], turn: int
    ) -> None:
        """Read one whole result (the worker writes it at once, so this waits only for the rest of it).
        The payload of result ``turn``, the next to hand out, goes straight to the sink."""
        fd = worker.result_fd
        died = f"worker {worker.pid} ended before sending {len(worker.jobs)} results"
        header = _read_exactly(fd, _HEADER.size)
        if header is None:
            raise WorkerDied(died)
        size, payload_size = _HEADER.unpack(header)
        try:
            data = _read_exactly(fd, size)
            if data is None:
                raise EOFError
            ok, value = marshal.loads(data)  # noqa: S302 - from our worker, over our pipe
            if not ok:
                value = _unpickled(value)
            seq = worker.jobs.popleft()
            payload: bytearray | None
            if seq == turn and self._sink is not None:
                left = self._splice(fd, payload_size)
                if left:
                    _write_all(self._sink, [_read_payload(fd, left)])
                payload = None
            else:
                payload = _read_payload(fd, payload_size)
        except EOFError:
            raise WorkerDied(died) from None
        ready[seq] = (ok, value, payload)

    def _splice(self, fd: int, size: int) -> int:
        """Move ``size`` bytes from ``fd`` to the sink in the kernel; returns what is left to move the
        slow way (the sink takes no splice: a terminal, a file opened for appending)."""
        sink = self._sink
        assert sink is not None
        while size and self._splicing:
            try:
                moved = os.splice(fd, sink, size)
            except OSError as err:
                if err.errno not in _NO_SPLICE:
                    raise
                self._splicing = False
                break
            if not moved:
                raise EOFError
            size -= moved
        return size


def _serve(work: Work, job_fd: int, result_fd: int) -> NoReturn:
    """A worker's life: run each job it is sent, send back the result, until the job pipe closes."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
        while (message := _read_message(job_fd)) is not None:
            try:
                value, payload = work(marshal.loads(message))  # noqa: S302 - from our parent
                data = marshal.dumps((True, value))
            except Exception as exc:  # the job's error, or a value marshal does not carry
                data, payload = marshal.dumps((False, _pickled(exc))), b""
            _write_all(result_fd, [_HEADER.pack(len(data), len(payload)), data, payload])
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _pickled(exc: Exception) -> bytes:
    """``exc`` pickled, or a RuntimeError naming it when it does not pickle and unpickle."""
    import pickle  # only on errors: not worth its import time on every scan

    try:
        data = pickle.dumps(exc, pickle.HIGHEST_PROTOCOL)
        pickle.loads(data)  # noqa: S301 - what we just pickled
    except Exception:
        return pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return data


def _unpickled(data: bytes) -> Exception:
    import pickle

    exc = pickle.loads(data)  # noqa: S301 - from our worker (_pickled)
    assert isinstance(exc, Exception)
    return exc


def _read_message(fd: int) -> bytes | None:
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    size, _ = _HEADER.unpack(header)
    data = _read_exactly(fd, size)
    if data is None:
        raise EOFError("job pipe closed in the middle of a message")
    return data


def _read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes, or None at end of file before the first."""
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            if left == size:
                return None
            raise EOFError("pipe closed in the middle of a message")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_payload(fd: int, size: int) -> bytearray:
    """``size`` bytes read straight into one buffer (a payload can be megabytes)."""
    buf = bytearray(size)
    with memoryview(buf) as view:
        got = 0
        while got < size:
            n = os.readv(fd, [view[got:]])
            if not n:
                raise EOFError("pipe closed in the middle of a message")
            got += n
    return buf


def _write_all(fd: int, parts: list[bytes | bytearray]) -> None:
    views = [memoryview(p) for p in parts if p]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]
