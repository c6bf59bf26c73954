"""The rule cache as gene rule sets use it: one entry per set of gene files loaded together.

`vigil scan --rules DIR` loads its rules on every run. For the 134 gene-rules that takes 24 ms
(decoding, templates, conditions, and an RE2 compile that checks each of 190 regexes), a quarter
of a short scan. A set's entry is keyed by the SHA-256 of every gene file's path and bytes, the
templates and container names the engine holds, the log level, and a fingerprint of the code that
compiles the rules (the gene front end, the IR and its codec, the compiler's checks, the versions
of vigil and RE2), so any change is a miss. It keeps each rule's IR, why gene disabled it (an
unknown container) and the rule as decoded (for `vigil rules dump`), and the messages the load
logged at that level, which a hit logs again. Only a set that loaded without error is stored.
The store itself (``vigil.engine.rule_cache``) is private, JSON only, and bounded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil.engine.ir import RuleIR
from vigil.engine.ir_codec import CacheFormatError, as_int, as_list, as_str, decode_rule, encode_rule
from vigil.engine.rule_cache import code_fingerprint, open_rule_store

__all__ = ["CachedSet", "captured_logs", "load", "set_key", "store"]

logger = logging.getLogger(__name__)

#: Bump when the entry's layout changes.
FORMAT = 1
#: The logger whose records (and its children's) a load replays: every module of the engine.
_ENGINE_LOGGER = "vigil.engine"

Built = list[tuple[RuleIR, str | None, dict[str, Any] | None]]
"""What ``Engine._build`` returns: each rule's IR, why it is disabled, and its decoded form."""

_code_digest: str | None = None


def _code_fingerprint() -> str:
    """Digest of the code whose output an entry keeps (read once per process, about 0.5 ms)."""
    global _code_digest
    if _code_digest is None:
        import re2

        import vigil
        from vigil.engine import runtime

        engine = Path(__file__).resolve().parent
        modules = [*sorted((engine / "gene").glob("*.py")), engine / "gene_cache.py", Path(runtime.__file__)]
        modules += [
            engine / name for name in ("ir.py", "ir_codec.py", "compiler.py", "loader.py", "engine.py")
        ]
        facts = [f"vigil={vigil.__version__}", f"format={FORMAT}"]
        try:  # the RE2 build decides which regexes compile: its extension module stands for it
            st = os.stat(re2._re2.__file__)
            facts.append(f"re2={st.st_size}:{st.st_mtime_ns}")
        except (AttributeError, OSError, TypeError):
            facts.append("re2=?")
        _code_digest = code_fingerprint(modules, facts)
    return _code_digest


def set_key(files: list[tuple[str, bytes]], templates: Mapping[str, str], containers: Collection[str]) -> str:
    """The key of gene ``files`` (path, bytes) loaded by an engine holding ``templates`` and
    ``containers``, at the engine loggers' current level."""
    level = logging.getLogger(_ENGINE_LOGGER).getEffectiveLevel()
    h = hashlib.sha256(b"vigil-gene-set\0" + _code_fingerprint().encode())
    context = [sorted(templates.items()), sorted(containers), level]
    h.update(json.dumps(context, ensure_ascii=False).encode() + b"\0")
    for path, data in files:
        h.update(os.fsencode(path) + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


@dataclass(slots=True)
class CachedSet:
    """A set read back from the cache: its rules and the messages its load logged."""

    built: Built
    logs: list[tuple[str, int, str]]

    def replay(self) -> None:
        for name, level, message in self.logs:
            logging.getLogger(name).log(level, "%s", message)


def load(key: str) -> CachedSet | None:
    """The set stored under ``key``; None on a miss or an entry this code does not read."""
    store_ = open_rule_store(create=False)
    if store_ is None:
        return None
    with store_:
        value = store_.get(key)
    if value is None:
        return None
    try:
        return _decode(value)
    except (
        CacheFormatError,
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
        RecursionError,
    ) as err:
        logger.debug("rule cache: gene set %s unusable (%s): loading the files", key, err)
        return None


def store(key: str, built: Built, logs: list[tuple[str, int, str]]) -> None:
    """Keep a set that loaded without error (best effort, like every write to the store)."""
    store_ = open_rule_store(create=True)
    if store_ is None:
        return
    value = {
        "format": FORMAT,
        "rules": [[encode_rule(ir), disabled, raw] for ir, disabled, raw in built],
        "logs": [list(entry) for entry in logs],
    }
    with store_:
        store_.put(key, value)


def _decode(value: Any) -> CachedSet:
    if value.__class__ is not dict or value.get("format") != FORMAT:
        raise CacheFormatError("not a gene set of this format")
    built: Built = []
    for item in as_list(value["rules"], "rules"):
        encoded, disabled, raw = as_list(item, "rule")
        if disabled is not None:
            as_str(disabled, "disabled")
        if raw is not None and raw.__class__ is not dict:
            raise CacheFormatError("a decoded rule that is not an object")
        built.append((decode_rule(encoded), disabled, raw))
    logs: list[tuple[str, int, str]] = []
    for item in as_list(value["logs"], "logs"):
        name, level, message = as_list(item, "log")
        logs.append((as_str(name, "logger"), as_int(level, "level"), as_str(message, "message")))
    return CachedSet(built, logs)


@contextlib.contextmanager
def captured_logs() -> Iterator[list[tuple[str, int, str]]]:
    """The (logger, level, message) of every record the engine's loggers emit meanwhile from this
    thread (an agent's other threads log too); the records still reach the usual handlers."""
    records: list[tuple[str, int, str]] = []
    thread = threading.get_ident()

    class _Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == thread:
                records.append((record.name, record.levelno, record.getMessage()))

    handler = _Capture()
    engine_logger = logging.getLogger(_ENGINE_LOGGER)
    engine_logger.addHandler(handler)
    try:
        yield records
    finally:
        engine_logger.removeHandler(handler)
