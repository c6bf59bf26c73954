"""What one Sigma file compiled to, as JSON-safe data and back, for the on-disk rule cache.

The rule cache (``vigil.engine.rule_cache``) keeps vigil's own output, never pySigma objects and
never pickle: rules as their IR (``vigil.engine.ir_codec``: nodes as short tagged lists, a regex
with its RE2 program size), the producer of their events, and the rejections in order. Decoding
checks every field's type and every node's shape and raises :class:`CacheFormatError` on anything
else, so a damaged entry is a miss, never a wrong rule.
"""

from __future__ import annotations

from typing import Any

from vigil.engine.ir_codec import (
    CacheFormatError,
    as_bool,
    as_choice,
    as_int,
    as_list,
    as_opt_str,
    as_str,
    bad,
    decode_rule,
    encode_rule,
)
from vigil.engine.sigma.errors import Rejection
from vigil.engine.sigma.results import CompiledRule, FileResult

__all__ = ["FORMAT", "CacheFormatError", "decode_file_result", "encode_file_result"]

#: Bump when the encoding changes (the cache key also covers vigil's code, see cache.py).
FORMAT = 1
_PRODUCERS = frozenset({"live", "scan"})


# ---------------------------------------------------------------------------------------- encode


def _rule(rule: CompiledRule) -> dict[str, Any]:
    return {**encode_rule(rule.ir), "producer": rule.producer}


def _rejection(r: Rejection) -> list[Any]:
    return [r.path, r.line, r.rule_id, r.title, r.kind, r.reason, r.correlation]


def encode_file_result(result: FileResult, path: str) -> dict[str, Any]:
    """``result`` (of the file at ``path``) as JSON-safe data."""
    return {
        "format": FORMAT,
        "path": path,
        "rules": [_rule(r) for r in result.rules],
        "file_rejections": [_rejection(r) for r in result.file_rejections],
        "rule_rejections": [_rejection(r) for r in result.rule_rejections],
    }


# ---------------------------------------------------------------------------------------- decode


def _decode_rule(v: Any, old: str, new: str) -> CompiledRule:
    ir = decode_rule(v, old, new)
    try:
        producer = as_choice(v["producer"], _PRODUCERS, "producer")
    except KeyError as err:
        raise CacheFormatError(f"rule without {err}") from None
    return CompiledRule(ir, producer)


def _decode_rejection(v: Any, old: str, new: str) -> Rejection:
    items = as_list(v, "rejection")
    if len(items) != 7:
        bad("rejection", v)
    path, line, rule_id, title, kind, reason, correlation = items
    if old != new and old in as_str(reason, "reason"):
        raise CacheFormatError("a reason names the file's former path")
    return Rejection(
        new if path == old else as_str(path, "path"),
        as_int(line, "line"),
        as_opt_str(rule_id, "rule id"),
        as_opt_str(title, "title"),
        as_str(kind, "kind"),
        as_str(reason, "reason"),
        as_bool(correlation, "correlation"),
    )


def decode_file_result(data: Any, path: str) -> FileResult:
    """The :class:`FileResult` ``encode_file_result`` wrote, for the same file now at ``path``,
    or :class:`CacheFormatError`. Reports name the file by ``path`` (the cache key leaves the path
    out, so a moved rule directory is still a hit); a reason that quotes the former path is a miss.
    """
    if data.__class__ is not dict or data.get("format") != FORMAT:
        raise CacheFormatError("not a compiled Sigma file of this format")
    try:
        old = as_str(data["path"], "path")
        return FileResult(
            [_decode_rule(r, old, path) for r in as_list(data["rules"], "rules")],
            [_decode_rejection(r, old, path) for r in as_list(data["file_rejections"], "file rejections")],
            [_decode_rejection(r, old, path) for r in as_list(data["rule_rejections"], "rule rejections")],
        )
    except KeyError as err:
        raise CacheFormatError(f"entry without {err}") from None
    except RecursionError:
        raise CacheFormatError("condition nested too deeply") from None
