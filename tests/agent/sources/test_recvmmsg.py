"""Batched datagram reads: every waiting datagram in one call, in order, truncated like recv()."""

from __future__ import annotations

import socket

from vigil.agent.sources._recvmmsg import DatagramReader


def test_reads_every_waiting_datagram_in_order_and_truncates_long_ones() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        reader = DatagramReader(b, batch=4, size=16)
        sent = [b"one", b"two" * 10, b"", b"x" * 5, b"y", b"zz"]
        for m in sent:
            a.send(m)
        got = reader.read()
        assert got == [b"one", (b"two" * 10)[:16], b"", b"x" * 5, b"y", b"zz"]
        assert reader.calls == 2  # 6 datagrams, 4 per call
        assert reader.read() == []  # nothing waits: no blocking


def test_one_read_is_bounded_and_the_rest_comes_with_the_next() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        reader = DatagramReader(b, batch=2, size=8, max_calls=3)
        for i in range(10):
            a.send(str(i).encode())
        assert reader.read() == [b"0", b"1", b"2", b"3", b"4", b"5"]
        assert reader.read() == [b"6", b"7", b"8", b"9"]
        assert reader.read() == []
