"""Session-wide test settings."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_rule_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Compiled-rule cache in a directory of this session, never the user's (or /var/cache)."""
    directory = tmp_path_factory.mktemp("rule-cache") / "rules"
    old = os.environ.get("VIGIL_RULE_CACHE_DIR")
    os.environ["VIGIL_RULE_CACHE_DIR"] = str(directory)
    yield
    if old is None:
        os.environ.pop("VIGIL_RULE_CACHE_DIR", None)
    else:
        os.environ["VIGIL_RULE_CACHE_DIR"] = old
