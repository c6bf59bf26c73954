from __future__ import annotations

from collections.abc import Iterator

import pytest

from vigil.manager.testing import LiveManager


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveManager]:
    """A real manager (TLS, loopback) shared by the tests of one module; bodies capped at 1 MiB."""
    with LiveManager(tmp_path_factory.mktemp("manager"), max_body_bytes=1024 * 1024) as manager:
        yield manager
