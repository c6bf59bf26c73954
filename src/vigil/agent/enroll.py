"""``vigil agent enroll``: put the manager's address and this endpoint's credentials in the config.

The ``[manager]`` section of the agent's TOML file is created or updated (other sections are kept;
comments are not, the file is rewritten). Each value is checked before anything is written, the
result must load as a valid agent config, and the file is replaced atomically with mode 0600
because it holds the endpoint's key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from vigil.agent.config import ConfigError, http_url, sha256_or_empty, uuid_or_empty

__all__ = ["EnrollError", "enroll"]


class EnrollError(Exception):
    """An enrolment value or the config file is wrong; nothing was written."""


def _check(name: str, problem: str | None) -> None:
    if problem is not None:
        raise EnrollError(f"{name}: {problem}")


def enroll(path: str | os.PathLike[str], *, url: str, uuid: str, key: str, fingerprint: str = "") -> Path:
    """Write the manager settings into ``path``; returns it. Raises EnrollError naming the bad value."""
    _check("--manager", http_url(url) if url else "must not be empty")
    _check("--uuid", uuid_or_empty(uuid) if uuid else "must not be empty")
    _check("--fingerprint", sha256_or_empty(fingerprint))
    if not key or any(c.isspace() for c in key):
        raise EnrollError("--key: must be a non-empty string without spaces")
    target = Path(path)
    data: dict[str, Any] = {}
    if target.exists():
        try:
            data = tomllib.loads(target.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise EnrollError(f"{target}: cannot be read as TOML ({e}); nothing was written") from None
    manager = dict(data.get("manager") or {})
    manager.update({"url": url, "uuid": uuid, "key": key})
    if fingerprint:
        manager["fingerprint"] = fingerprint.replace(":", "").lower()
    data["manager"] = manager
    text = tomli_w.dumps(data)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    tmp = target.with_name(f".{target.name}.enroll")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        _validate(tmp)
        os.chmod(tmp, 0o600)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _validate(path: Path) -> None:
    from vigil.agent.config_loader import load_config

    try:
        load_config(path, env={})
    except ConfigError as e:
        raise EnrollError(f"the resulting configuration is invalid: {e}; nothing was written") from None
