"""Pulls rules, IoCs and the agent configuration from the manager (WHIDS §4.9 schedule).

Gene rules (``database.gen``) and Sigma rules (``manager-sigma.yml``) are two sets, each with its
own sha256, synced the same way. Each sync compares the manager's sha256 with the local copy's, downloads only on a difference,
verifies the body against the announced digest, validates it, and only then replaces the local
file atomically and asks the agent to reload. A rule set that does not compile never replaces the
one in use: the old rules keep running and the reason is kept in ``last_error`` for health reports.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from vigil.agent.link.client import EndpointClient

logger = logging.getLogger(__name__)

__all__ = [
    "ConfigSync",
    "IocSync",
    "RuleSync",
    "SyncError",
    "config_digest",
    "sigma_rule_sync",
    "write_atomically",
]

RULES_FILE = "database.gen"
#: The manager's Sigma rules, next to its Gene rules: the engine loads ``.yml`` files of the rules
#: directory with the Sigma front end, and the detector reads their correlation rules.
SIGMA_RULES_FILE = "manager-sigma.yml"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
IOC_CONTAINER = "edr_iocs"


class SyncError(Exception):
    """What the manager sent cannot be used; the local copy stays in place."""


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def config_digest(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a config (sorted keys, compact): the manager computes the same."""
    return hashlib.sha256(orjson.dumps(config, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class _State:
    last_error: str = ""
    updates: int = 0


class RuleSync:
    """Keeps ``<rules_dir>/database.gen`` (or ``file_name``) equal to one of the manager's rule sets.

    ``fetch`` and ``fetch_sha256`` name the set (default: the Gene rules of ``GET /rules``).
    With ``absent_when_empty`` an empty set is no file at all (the Sigma set: most fleets have none).
    """

    def __init__(
        self,
        client: EndpointClient,
        rules_dir: Path,
        *,
        validate: Callable[[bytes], list[str]],
        apply: Callable[[], None],
        file_name: str = RULES_FILE,
        fetch: Callable[[], bytes] | None = None,
        fetch_sha256: Callable[[], str] | None = None,
        absent_when_empty: bool = False,
        what: str = "rules",
    ) -> None:
        self.client = client
        self.path = rules_dir / file_name
        self.validate = validate
        self.apply = apply
        self.fetch = fetch or client.rules
        self.fetch_sha256 = fetch_sha256 or client.rules_sha256
        self.absent_when_empty = absent_when_empty
        self.what = what
        self.state = _State()

    def local_digest(self) -> str:
        if self.path.exists():
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        return _EMPTY_SHA256 if self.absent_when_empty else ""

    def run_once(self) -> bool:
        remote = self.fetch_sha256()
        if remote == self.local_digest():
            return False
        body = self.fetch()
        digest = hashlib.sha256(body).hexdigest()
        try:
            if digest != remote:
                raise SyncError(f"{self.what} body sha256 {digest} differs from the announced {remote}")
            errors = self.validate(body) if body or not self.absent_when_empty else []
            if errors:
                raise SyncError(
                    f"manager {self.what} refused, keeping the current ones: {'; '.join(errors[:5])}"
                )
        except SyncError as exc:
            self.state.last_error = str(exc)
            logger.error("%s", exc)
            return False
        if body or not self.absent_when_empty:
            write_atomically(self.path, body)
        else:
            self.path.unlink(missing_ok=True)
        self.state.last_error = ""
        self.state.updates += 1
        logger.info("%s updated from the manager (sha256 %s)", self.what, digest)
        self.apply()
        return True


def sigma_rule_sync(
    client: EndpointClient,
    rules_dir: Path,
    *,
    validate: Callable[[bytes], list[str]],
    apply: Callable[[], None],
) -> RuleSync:
    """Keeps ``<rules_dir>/manager-sigma.yml`` equal to the manager's Sigma set (``GET /rules/sigma``)."""
    return RuleSync(
        client,
        rules_dir,
        validate=validate,
        apply=apply,
        file_name=SIGMA_RULES_FILE,
        fetch=client.sigma_rules,
        fetch_sha256=client.sigma_rules_sha256,
        absent_when_empty=True,
        what="Sigma rules",
    )


class IocSync:
    """Keeps the ``edr_iocs`` container file equal to the manager's IoC values."""

    def __init__(self, client: EndpointClient, containers_dir: Path, *, apply: Callable[[], None]) -> None:
        self.client = client
        self.path = containers_dir / f"{IOC_CONTAINER}.cont"
        self.apply = apply
        self.state = _State()

    @staticmethod
    def digest(values: list[str]) -> str:
        return hashlib.sha256("".join(values).encode()).hexdigest()

    def local_values(self) -> list[str]:
        if not self.path.exists():
            return []
        return [line for line in self.path.read_text().split("\n") if line]

    def run_once(self) -> bool:
        remote = self.client.iocs_sha256()
        if remote == self.digest(self.local_values()):
            return False
        values = self.client.iocs()
        if self.digest(values) != remote:
            self.state.last_error = "IoC list does not match the announced sha256; keeping the current IoCs"
            logger.error("%s", self.state.last_error)
            return False
        if any("\n" in v for v in values):
            self.state.last_error = "IoC values contain newlines; keeping the current IoCs"
            logger.error("%s", self.state.last_error)
            return False
        write_atomically(self.path, "".join(f"{v}\n" for v in values).encode())
        self.state.last_error = ""
        self.state.updates += 1
        logger.info("IoCs updated from the manager: %d values", len(values))
        self.apply()
        return True


class ConfigSync:
    """Pushes the local agent config when the manager has none; pulls it when it differs."""

    def __init__(
        self,
        client: EndpointClient,
        *,
        current: Callable[[], dict[str, Any]],
        replace: Callable[[dict[str, Any]], list[str]],
    ) -> None:
        self.client = client
        self.current = current
        self.replace = replace  # validates, saves and restarts; returns errors (empty on success)
        self.state = _State()

    def run_once(self) -> bool:
        remote = self.client.config_sha256()
        local = self.current()
        if remote is None:
            self.client.post_config(local)
            logger.info("the manager had no configuration for this endpoint: pushed the local one")
            return False
        if remote == config_digest(local):
            return False
        config = self.client.config()
        if config is None:
            return False
        errors = self.replace(config)
        if errors:
            self.state.last_error = f"manager configuration refused: {'; '.join(errors)}"
            logger.error("%s", self.state.last_error)
            return False
        self.state.last_error = ""
        self.state.updates += 1
        return True
