from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vigil.agent.spool import Spool, SpoolError, event_hash


def test_fifo_peek_and_ack(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db") as spool:
        spool.put([b'{"n":1}', b'{"n":2}', b'{"n":3}'])
        batch = spool.peek(2)
        assert [e.body for e in batch] == [b'{"n":1}', b'{"n":2}']
        assert batch[0].hash == event_hash(b'{"n":1}')
        spool.ack(batch)
        assert [e.body for e in spool.peek(10)] == [b'{"n":3}']
        assert len(spool) == 1


def test_peek_respects_byte_bound_but_always_returns_one(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db") as spool:
        spool.put([b"x" * 100, b"y" * 100, b"z" * 100])
        assert len(spool.peek(10, max_bytes=150)) == 1
        assert len(spool.peek(10, max_bytes=250)) == 2
        assert len(spool.peek(10, max_bytes=10)) == 1  # an event larger than the bound still goes


def test_events_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path) as spool:
        spool.put([b"a", b"b"])
    with Spool(path) as spool:
        assert [e.body for e in spool.peek(10)] == [b"a", b"b"]
        assert spool.size_bytes == 2


def test_cap_evicts_oldest_first_and_counts(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db", max_bytes=1000) as spool:
        for i in range(30):
            spool.put([b"%03d" % i + b"-" * 96])  # 100 bytes each
        assert spool.size_bytes <= 1000
        kept = [int(e.body[:3]) for e in spool.peek(100)]
        assert kept == list(range(30 - len(kept), 30))  # the newest survive, in order
        assert spool.evicted == 30 - len(kept)
    with Spool(tmp_path / "spool.db", max_bytes=1000) as spool:
        assert spool.evicted == 30 - len(kept)  # the count is durable too


def test_ack_of_already_evicted_events_keeps_counts_right(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db", max_bytes=250) as spool:
        spool.put([b"a" * 100, b"b" * 100])
        batch = spool.peek(2)
        spool.put([b"c" * 100])  # evicts the oldest while the batch is in flight
        spool.ack(batch)
        assert [e.body[:1] for e in spool.peek(10)] == [b"c"]
        assert spool.size_bytes == 100


def test_bad_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SpoolError, match="spool .*file/spool.db"):
        Spool(blocker / "spool.db")


def test_invalid_cap_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        Spool(tmp_path / "s.db", max_bytes=0)


def test_sigkill_loses_nothing_that_put_returned(tmp_path: Path) -> None:
    """A writer killed with SIGKILL mid-stream: every event whose put() returned is in the spool."""
    path = tmp_path / "spool.db"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from vigil.agent.spool import Spool
        spool = Spool(Path({str(path)!r}))
        i = 0
        while True:
            spool.put([b'{{"seq":%d}}' % i])
            sys.stdout.write(f"{{i}}\\n")
            sys.stdout.flush()
            i += 1
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acknowledged = -1
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged >= 300:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    with Spool(path) as spool:
        stored = [int(e.body.split(b":")[1].rstrip(b"}")) for e in spool.peek(100_000)]
    assert stored[: acknowledged + 1] == list(range(acknowledged + 1))
