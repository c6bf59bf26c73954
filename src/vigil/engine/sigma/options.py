"""Configuration of the Sigma front end (no pySigma import: it is part of the rule-cache key)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["CompileOptions"]


@dataclass(frozen=True)
class CompileOptions:
    """Configuration of the front end: values of ``expand`` placeholders (``%name%`` -> values)."""

    placeholders: Mapping[str, Sequence[str]] = field(default_factory=dict)
