"""gene v2.3.0 match-statement vectors: parse result and outcome against one event."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from vigil.engine import Engine, RuleLoadError
from vigil.engine.gene.matches import MatchError, parse_match
from vigil.engine.ir import ContainerMatch, FieldRefMatch, FlagMatch, NumCmp, RegexMatch, StrMatch

GOLDEN = Path(__file__).resolve().parents[2] / "../shared/data/golden"
VECTORS = [
    json.loads(line) for line in (GOLDEN / "match-vectors-v2.3.0.jsonl").read_text().splitlines() if line
]
EVENT = json.loads((GOLDEN / "match-vectors-event.json").read_text())


def test_vector_count() -> None:
    assert len(VECTORS) == 109


def _go_unquote(s: str) -> str:
    return json.loads(s)


def _expected_fields(result: str) -> dict[str, str]:
    return {m.group(1): _go_unquote(m.group(2)) for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*")', result)}


OPS = {StrMatch: "=", RegexMatch: "~=", FlagMatch: "&=", FieldRefMatch: "="}


@pytest.mark.parametrize("vector", VECTORS, ids=[v["match"] for v in VECTORS])
def test_match_vector(vector: dict[str, Any]) -> None:
    statement, result = vector["match"], vector["result"]
    engine = Engine()
    for name, values in (vector["containers"] or {}).items():
        engine.add_container(name, values)
    rule = {"Name": "v", "Meta": {"Schema": "2.0.0"}, "Matches": [statement]}
    if result in ("NOMATCHSYNTAX",) or result.startswith("PARSEERR"):
        with pytest.raises(RuleLoadError) as info:
            engine.load_text(json.dumps(dict(rule, Condition="$a")))
        err = info.value.errors[0]
        assert err.rule == "v" and err.statement == statement
        with pytest.raises(MatchError):
            parse_match(statement)
        return
    fields = _expected_fields(result)
    parsed = parse_match(statement)
    assert parsed.name == fields["name"]
    node = parsed.node
    expected_path = tuple(("/Event/EventData/" + fields["operand"]).strip("/").split("/"))
    assert node.field == expected_path  # type: ignore[union-attr]
    if isinstance(node, ContainerMatch):
        assert (node.pattern, node.group, node.container) == (
            fields["regexp"],
            fields["rexname"],
            fields["container"],
        )
    elif isinstance(node, FieldRefMatch):
        assert fields["op"] == "=" and node.other == tuple(
            ("/Event/EventData/" + fields["value"]).strip("/").split("/")
        )
    elif isinstance(node, NumCmp):
        assert node.op == fields["op"]
    else:
        assert OPS[type(node)] == fields["op"]
        if isinstance(node, StrMatch):
            assert node.value == fields["value"]
        if isinstance(node, RegexMatch):
            assert node.pattern == "(" + fields["value"] + ")"
    engine.load_text(json.dumps(dict(rule, Condition=parsed.name)))
    want = result.endswith("match=true")
    got = engine.match(json.loads(json.dumps(EVENT))).signature == ["v"]
    assert got == want
