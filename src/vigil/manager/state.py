"""The running manager's shared state: config, store, caches, artifact root and stream hub."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from vigil.manager.artifacts import ArtifactStore
from vigil.manager.config import ManagerConfig
from vigil.manager.iocs import IocCache
from vigil.manager.parsers import ParserPool
from vigil.manager.rules import RuleCache
from vigil.manager.store import SQLiteStore, Store
from vigil.manager.streams import StreamHub

__all__ = ["Manager"]

logger = logging.getLogger(__name__)


@dataclass
class Manager:
    config: ManagerConfig
    store: Store
    rules: RuleCache = field(init=False)
    iocs: IocCache = field(init=False)
    artifacts: ArtifactStore = field(init=False)
    hub: StreamHub = field(default_factory=StreamHub)
    parsers: ParserPool = field(init=False)

    def __post_init__(self) -> None:
        self.rules = RuleCache(self.store)
        self.iocs = IocCache(self.store)
        self.artifacts = ArtifactStore(self.config.artifact_dir)
        self.parsers = ParserPool(self.config.ingest_workers, self.config.max_body_bytes)

    @classmethod
    def open(cls, config: ManagerConfig) -> Manager:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(config, SQLiteStore(config.db_path, sync_full=config.sync_full))

    @property
    def drop_dir(self) -> str:
        return str(self.config.data_dir / "drop")

    def close(self) -> None:
        self.hub.close()
        self.parsers.close()
        self.store.close()
