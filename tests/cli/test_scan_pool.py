"""The forked worker pool of `vigil scan --jobs N`: results in job order, errors where they belong,
big messages both ways, dead workers reported, every worker reaped, payloads written to a sink in
job order."""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vigil.cli.scan_pool import Pool, WorkerDied


def _echo(job: Any) -> tuple[Any, bytes]:
    """Job ``(n, delay, size)``: sleeps, and answers ``(n, pid)`` and ``size`` bytes of payload."""
    n, delay, size = job
    time.sleep(delay)
    return (n, os.getpid()), bytes([n % 256]) * size


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(("workers", "window"), [(1, 1), (2, 2), (3, 12)])
def test_results_come_in_job_order_whatever_order_the_workers_finish(workers: int, window: int) -> None:
    jobs = [(n, 0.02 if n % 5 == 0 else 0.0, n * 10) for n in range(40)]
    with Pool(workers, _echo) as pool:
        got = list(pool.results(iter(jobs), window=window))
    assert [value[0] for value, _ in got] == list(range(40))
    assert [payload for _, payload in got] == [bytes([n % 256]) * (n * 10) for n in range(40)]
    assert len({value[1] for value, _ in got}) == workers  # every worker took part


def test_messages_bigger_than_a_pipe_go_both_ways() -> None:
    """A 3 MiB job (a block of stdin) and a 5 MiB result, several in flight, do not block."""

    def work(job: tuple[int, bytes]) -> tuple[Any, bytes]:
        n, data = job
        return n, data + data[: 2 << 20]

    jobs = [(n, bytes([n]) * (3 << 20)) for n in range(6)]
    with Pool(2, work) as pool:
        got = list(pool.results(jobs, window=4))
    assert [n for n, _ in got] == list(range(6))
    assert all(payload == bytes([n]) * (5 << 20) for n, payload in got)


def test_an_error_in_a_job_is_raised_in_its_turn() -> None:
    def work(n: int) -> tuple[Any, bytes]:
        if n == 5:
            raise OSError(f"job {n}: no such file")
        time.sleep(0.01 if n < 5 else 0)
        return n, b""

    seen: list[int] = []
    with Pool(2, work) as pool, pytest.raises(OSError, match="job 5: no such file"):
        for n, _ in pool.results(range(20), window=6):
            seen.append(n)
    assert seen == [0, 1, 2, 3, 4]


def test_an_error_that_does_not_pickle_still_gets_to_the_parent() -> None:
    class Odd(Exception):
        def __reduce__(self) -> Any:
            raise TypeError("no")

    def work(n: int) -> tuple[Any, bytes]:
        raise Odd(f"odd {n}")

    with Pool(1, work) as pool, pytest.raises(RuntimeError, match="Odd: odd 0"):
        list(pool.results([0], window=2))


def test_an_error_taking_the_next_job_comes_after_the_results_before_it() -> None:
    def jobs() -> Iterator[tuple[int, float, int]]:
        yield from ((n, 0.01, 1) for n in range(5))
        raise OSError("second input: permission denied")

    seen: list[int] = []
    with Pool(2, _echo) as pool, pytest.raises(OSError, match="permission denied"):
        for value, _ in pool.results(jobs(), window=4):
            seen.append(value[0])
    assert seen == [0, 1, 2, 3, 4]


def test_a_killed_worker_is_reported_and_every_worker_is_reaped() -> None:
    def work(n: int) -> tuple[Any, bytes]:
        if n == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return os.getpid(), b""

    pool = Pool(2, work)
    pids = [w.pid for w in pool._workers]
    with pool, pytest.raises(WorkerDied, match=r"worker \d+ ended (before sending \d results|early)"):
        list(pool.results(range(10), window=4))
    for pid in pids:  # reaped: not even a zombie is left
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_leaving_early_ends_the_workers() -> None:
    pool = Pool(2, _echo)
    pids = [w.pid for w in pool._workers]
    with pool:
        for value, _ in pool.results(((n, 0.05, 1) for n in range(100)), window=4):
            if value[0] == 2:
                break
    assert not any(_alive(pid) for pid in pids)


def test_workers_end_when_there_is_nothing_to_do() -> None:
    pool = Pool(3, _echo)
    pids = [w.pid for w in pool._workers]
    with pool:
        assert list(pool.results([], window=4)) == []
    assert not any(_alive(pid) for pid in pids)


def _expected(jobs: list[tuple[int, float, int]]) -> bytes:
    return b"".join(bytes([n % 256]) * size for n, _, size in jobs)


@pytest.mark.parametrize("splice", [True, False])
def test_a_sink_gets_every_payload_in_job_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, splice: bool
) -> None:
    """Whatever order the workers finish in, and whether the sink takes ``splice`` or not (a
    terminal does not: the pool then reads and writes); the big payloads exceed a pipe."""
    if not splice:

        def refused(*_: Any) -> int:
            raise OSError(errno.EINVAL, "Invalid argument")

        monkeypatch.setattr(os, "splice", refused)
    jobs = [(n, 0.02 if n % 4 == 1 else 0.0, (3 << 20) if n % 7 == 3 else n * 1000) for n in range(30)]
    out = tmp_path / "out"
    with out.open("wb") as sink, Pool(2, _echo) as pool:
        got = list(pool.results(iter(jobs), window=6, sink=sink.fileno()))
    assert [value[0] for value, _ in got] == list(range(30))
    assert all(payload == b"" for _, payload in got)  # handed out empty: they are in the sink
    assert out.read_bytes() == _expected(jobs)


def test_a_pipe_sink_gets_every_payload_in_job_order() -> None:
    jobs = [(n, 0.01 if n % 3 == 0 else 0.0, n * 5000) for n in range(12)]
    read_end, write_end = os.pipe()
    received = bytearray()
    pid = os.fork()
    if pid == 0:  # a reader, so that the pipe never fills
        os.close(write_end)
        with open(read_end, "rb") as source:
            data = source.read()
        os._exit(0 if data == _expected(jobs) else 1)
    os.close(read_end)
    try:
        with Pool(2, _echo) as pool:
            for value, payload in pool.results(iter(jobs), window=4, sink=write_end):
                received += payload
                assert value[0] >= 0
    finally:
        os.close(write_end)
        _, status = os.waitpid(pid, 0)
    assert received == b""
    assert os.waitstatus_to_exitcode(status) == 0


def test_nothing_after_an_error_reaches_the_sink(tmp_path: Path) -> None:
    def work(n: int) -> tuple[Any, bytes]:
        if n == 5:
            raise OSError(f"job {n}: no such file")
        time.sleep(0.02 if n == 4 else 0)  # the jobs after 5 are done before 4
        return n, b"%d\n" % n

    out = tmp_path / "out"
    with out.open("wb") as sink, Pool(2, work) as pool, pytest.raises(OSError, match="job 5"):
        for _ in pool.results(range(20), window=8, sink=sink.fileno()):
            pass
    assert out.read_bytes() == b"0\n1\n2\n3\n4\n"


def test_a_result_marshal_does_not_carry_is_an_error_in_its_turn() -> None:
    """Jobs and results are plain values; a worker returning anything else reports it (ValueError
    from marshal) instead of dying, and the results before it still come."""

    def work(n: int) -> tuple[Any, bytes]:
        return (n if n < 2 else object()), b""

    seen: list[Any] = []
    with Pool(2, work) as pool, pytest.raises(ValueError, match="unmarshallable"):
        for value, _payload in pool.results(range(4), window=4):
            seen.append(value)
    assert seen == [0, 1]
