"""Read the regression cases' .evtx files into vigil's event shape (tests only).

Until ``vigil.events.evtx.read_evtx`` lands on main, the Sigma tests read ``.evtx`` files with the
``evtx`` package and reshape its JSON like gene's EVTX reader (``../shared/data/README.md``):
attributes merged into their element, element text beside attributes becomes ``Value``, every
scalar a string.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from evtx import PyEvtxParser


def _scalar(v: Any) -> Any:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def reshape(node: Any) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k == "#attributes":
                out.update({ak: _scalar(av) for ak, av in v.items()})
            elif k == "#text":
                out["Value"] = reshape(v)
            else:
                out[k] = reshape(v)
        return out
    if isinstance(node, list):
        return [reshape(v) for v in node]
    return _scalar(node)


def read_evtx(path: str | Path) -> Iterator[dict[str, Any]]:
    for record in PyEvtxParser(str(path)).records_json():
        yield reshape(orjson.loads(record["data"]))
