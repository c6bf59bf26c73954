from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.agent.tls_server import LogSink, TLSServer, start_tls_server


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TLSServer]:
    server = start_tls_server(tmp_path, LogSink())
    yield server
    server.stop()
