"""Sigma front end: compiles Sigma rules (parsed by pySigma) into vigil's predicate IR.

Needs the ``sigma`` extra (``pip install 'vigil[sigma]'``). See ``docs/sigma.md`` for the field
mapping, log sources, value and condition semantics, correlation rules and the rule cache.

Importing this package registers the ``.yml``/``.yaml`` loader with the engine and imports pySigma
only when a name that needs it is first used: a load served by the rule cache never does.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if importlib.util.find_spec("sigma") is None:  # pragma: no cover - depends on the installation
    raise ImportError("the Sigma front end needs pySigma: pip install 'vigil[sigma]'")

from vigil.engine.sigma.correlate import event_timestamp, hit_record
from vigil.engine.sigma.errors import (
    Rejection,
    SigmaFrontEndError,
    SigmaParseError,
    UnsupportedConstruct,
    UnsupportedLogSource,
)
from vigil.engine.sigma.fields import SYSTEM_FIELDS, field_paths
from vigil.engine.sigma.frontend import configure, load_sigma_file
from vigil.engine.sigma.loader import SIGMA_SUFFIXES, SigmaRuleSet, load_sigma, load_sigma_text
from vigil.engine.sigma.options import CompileOptions
from vigil.engine.sigma.results import CompiledRule

if TYPE_CHECKING:
    from vigil.engine.sigma.compiler import compile_condition, compile_rule
    from vigil.engine.sigma.correlate import correlation_engine_for
    from vigil.engine.sigma.correlation import (
        CorrelationEngine,
        CorrelationHit,
        CorrelationRuleIR,
        compile_correlation,
    )
    from vigil.engine.sigma.logsources import (
        AUDIT_CHANNEL,
        LINUX_SYSMON_CHANNEL,
        SYSLOG_CHANNEL,
        SYSMON_CHANNEL,
        LogSourceMapping,
        map_logsource,
    )
    from vigil.engine.sigma.meta import CRITICALITY

#: Names whose modules import pySigma, loaded on first use.
_LAZY = {
    "compile_condition": "compiler",
    "compile_rule": "compiler",
    "correlation_engine_for": "correlate",
    "CorrelationEngine": "correlation",
    "CorrelationHit": "correlation",
    "CorrelationRuleIR": "correlation",
    "compile_correlation": "correlation",
    "AUDIT_CHANNEL": "logsources",
    "LINUX_SYSMON_CHANNEL": "logsources",
    "SYSLOG_CHANNEL": "logsources",
    "SYSMON_CHANNEL": "logsources",
    "LogSourceMapping": "logsources",
    "map_logsource": "logsources",
    "CRITICALITY": "meta",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AUDIT_CHANNEL",
    "CRITICALITY",
    "LINUX_SYSMON_CHANNEL",
    "SIGMA_SUFFIXES",
    "SYSLOG_CHANNEL",
    "SYSMON_CHANNEL",
    "SYSTEM_FIELDS",
    "CompileOptions",
    "CompiledRule",
    "CorrelationEngine",
    "CorrelationHit",
    "CorrelationRuleIR",
    "LogSourceMapping",
    "Rejection",
    "SigmaFrontEndError",
    "SigmaParseError",
    "SigmaRuleSet",
    "UnsupportedConstruct",
    "UnsupportedLogSource",
    "compile_condition",
    "compile_correlation",
    "compile_rule",
    "configure",
    "correlation_engine_for",
    "event_timestamp",
    "field_paths",
    "hit_record",
    "load_sigma",
    "load_sigma_file",
    "load_sigma_text",
    "map_logsource",
]
