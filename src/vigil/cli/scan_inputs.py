"""`vigil scan` inputs: files as given, and each directory replaced by the log files under it.

A directory is walked recursively; a file is a log file when its name ends with one of
``LOG_SUFFIXES`` (any case), other files are skipped. Symlinked directories are not entered (a link
back to a parent cannot loop), symlinked files are read. The files of one directory come sorted by
their path components (as ``sorted(Path(d).rglob(...))`` orders them), so a scan prints the same
output on every run and with every ``--jobs``.
"""

from __future__ import annotations

import os

#: What a directory input contributes: EVTX files and the JSON-lines files the scan reads.
LOG_SUFFIXES = (".evtx", ".jsonl", ".ndjson", ".json")


def expand_inputs(inputs: list[str]) -> list[str]:
    """``inputs`` with every directory replaced by its log files; ValueError names a directory
    without any, OSError one that cannot be read."""
    expanded: list[str] = []
    for path in inputs:
        if path != "-" and os.path.isdir(path):
            files = log_files(path)
            if not files:
                raise ValueError(
                    f"{path}: no log file in this directory (looked for {', '.join(LOG_SUFFIXES)})"
                )
            expanded.extend(files)
        else:
            expanded.append(path)
    return expanded


def log_files(root: str) -> list[str]:
    """The log files under ``root``, recursively, sorted by path components."""

    def fail(err: OSError) -> None:
        raise err

    found: list[tuple[tuple[str, ...], str]] = []
    for dirpath, _dirnames, filenames in os.walk(root, onerror=fail, followlinks=False):
        for name in filenames:
            if name.lower().endswith(LOG_SUFFIXES):
                path = os.path.join(dirpath, name)
                found.append((tuple(os.path.relpath(path, root).split(os.sep)), path))
    found.sort()
    return [path for _, path in found]
