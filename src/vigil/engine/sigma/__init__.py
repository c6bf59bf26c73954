"""Sigma front end: compiles Sigma rules (parsed by pySigma) into vigil's predicate IR.

Needs the ``sigma`` extra (``pip install 'vigil[sigma]'``). See ``docs/sigma.md`` for the field
mapping, log sources, value and condition semantics, and correlation rules.
"""

from __future__ import annotations

try:
    import sigma as _pysigma  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("the Sigma front end needs pySigma: pip install 'vigil[sigma]'") from e

from vigil.engine.sigma.compiler import CompiledRule, compile_condition, compile_rule
from vigil.engine.sigma.correlate import correlation_engine_for, event_timestamp, hit_record
from vigil.engine.sigma.correlation import (
    CorrelationEngine,
    CorrelationHit,
    CorrelationRuleIR,
    compile_correlation,
)
from vigil.engine.sigma.errors import (
    SigmaFrontEndError,
    SigmaParseError,
    UnsupportedConstruct,
    UnsupportedLogSource,
)
from vigil.engine.sigma.fields import SYSTEM_FIELDS, field_paths
from vigil.engine.sigma.frontend import configure, load_sigma_file
from vigil.engine.sigma.loader import SIGMA_SUFFIXES, Rejection, SigmaRuleSet, load_sigma, load_sigma_text
from vigil.engine.sigma.logsources import (
    AUDIT_CHANNEL,
    LINUX_SYSMON_CHANNEL,
    SYSLOG_CHANNEL,
    SYSMON_CHANNEL,
    LogSourceMapping,
    map_logsource,
)
from vigil.engine.sigma.meta import CRITICALITY
from vigil.engine.sigma.values import CompileOptions

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
