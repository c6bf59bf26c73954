"""Manager configuration: one frozen dataclass with defaults and help, read from ``manager.toml``.

Precedence: defaults < ``<data>/manager.toml`` < CLI flags (applied with :meth:`ManagerConfig.replace`).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.manager.errors import BadRequest

__all__ = ["CONFIG_FILE", "ManagerConfig"]

CONFIG_FILE = "manager.toml"


@dataclass(frozen=True)
class ManagerConfig:
    """Settings of one manager; ``help`` metadata is the reference text of docs/manager.md."""

    data_dir: Path = field(metadata={"help": "directory holding the database, TLS material and artifacts"})
    admin_host: str = field(default="127.0.0.1", metadata={"help": "admin API listen address"})
    admin_port: int = field(default=1520, metadata={"help": "admin API port"})
    endpoint_host: str = field(default="0.0.0.0", metadata={"help": "endpoint API listen address"})  # noqa: S104
    endpoint_port: int = field(default=1519, metadata={"help": "endpoint API port"})
    tls: bool = field(default=True, metadata={"help": "serve HTTPS; false serves plain HTTP (explicit only)"})
    cert_file: str = field(default="tls/cert.pem", metadata={"help": "certificate, relative to data_dir"})
    key_file: str = field(default="tls/key.pem", metadata={"help": "private key, relative to data_dir"})
    server_key: str = field(default="", metadata={"help": "string answered on the endpoint API GET /key"})
    max_body_bytes: int = field(
        default=64 * 1024 * 1024,
        metadata={"help": "largest request body accepted, after gunzip (413 past it)"},
    )
    ingest_workers: int = field(
        default=1,
        metadata={"help": "processes parsing POST /logs batches (0 = parse in the manager process)"},
    )
    sync_full: bool = field(
        default=True,
        metadata={
            "help": "fsync the SQLite WAL on every commit: an answered batch survives power loss; false"
            " (synchronous=NORMAL) survives a killed manager but may lose the last commits on power loss"
        },
    )

    @property
    def db_path(self) -> Path:
        return self.data_dir / "manager.db"

    @property
    def artifact_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def cert_path(self) -> Path:
        return self.data_dir / self.cert_file

    @property
    def key_path(self) -> Path:
        return self.data_dir / self.key_file

    def replace(self, **changes: Any) -> ManagerConfig:
        """Return a copy with the non-None ``changes`` applied (CLI overrides)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def load(cls, data_dir: Path) -> ManagerConfig:
        """Read ``<data_dir>/manager.toml`` (missing file = defaults); unknown keys are an error."""
        path = data_dir / CONFIG_FILE
        values: dict[str, Any] = {}
        if path.exists():
            try:
                values = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise BadRequest(f"{path}: {exc}", field=str(path)) from exc
        known = {f.name: f for f in dataclasses.fields(cls) if f.name != "data_dir"}
        for key, value in values.items():
            if key not in known:
                raise BadRequest(f"{path}: unknown setting {key!r} (known: {', '.join(known)})", field=key)
            expected = type(getattr(cls(data_dir=data_dir), key))
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise BadRequest(f"{path}: {key} must be {expected.__name__}", field=key)
        return cls(data_dir=data_dir, **values)

    def to_toml(self) -> str:
        """The settings (without data_dir) as TOML, with each setting's help as a comment."""
        lines = []
        for f in dataclasses.fields(self):
            if f.name == "data_dir":
                continue
            value = getattr(self, f.name)
            rendered = ("true" if value else "false") if isinstance(value, bool) else repr(value)
            if isinstance(value, str):
                rendered = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            lines.append(f"# {f.metadata['help']}\n{f.name} = {rendered}\n")
        return "\n".join(lines)
