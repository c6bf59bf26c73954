"""All 52 269 gene v2.3.0 condition vectors, through the whole engine (rule load + compiled match).

Each vector becomes one rule whose operands ``$a``..``$d`` test its own fields of one shared event, so
a chunk of 500 vectors is one rule set and one match. ``ERR``/``UNK``/``PANIC`` vectors must be load
errors (vigil rejects at load what makes gene crash). Where gene crashes only for *other* operand
values of the same condition, vigil rejects the condition too (docs/rules.md); those vectors are
listed in ``VALUE_DEPENDENT_CRASH`` and checked against gene's value with the literal evaluator.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from vigil.engine import Engine, RuleLoadError
from vigil.engine.gene.condition import ConditionCrash, evaluate, parse

GOLDEN = Path(__file__).resolve().parents[2] / "../shared/data/golden"
FILES = ["cond-vectors-wellformed.tsv", "cond-vectors-fuzz.tsv", "cond-vectors-gene-var_test.tsv"]
CHUNK = 500
#: Vectors with a 0/1 result whose condition makes gene crash for some other operand values.
VALUE_DEPENDENT_CRASH = 26


def _vectors() -> list[tuple[str, str, dict[str, bool], str]]:
    out = []
    for name in FILES:
        for n, line in enumerate((GOLDEN / name).read_text(encoding="utf-8").split("\n")):
            if not line:
                continue
            cond, vals, result = line.split("\t")
            values = {k: v == "1" for k, v in (kv.split("=") for kv in vals.split(","))}
            out.append((f"{name}:{n + 1}", cond, values, result))
    return out


VECTORS = _vectors()


def test_vector_count() -> None:
    assert len(VECTORS) == 52269


def _rule(i: int, cond: str, values: dict[str, bool]) -> str:
    import json

    matches = [f"{op}: {op[1:]}{i} = '1'" for op in values]
    return json.dumps({"Name": f"v{i}", "Meta": {"Schema": "2.0.0"}, "Matches": matches, "Condition": cond})


def _crashes_elsewhere(cond: str, values: dict[str, bool]) -> bool:
    elements = parse(cond, values)
    for bits in itertools.product((False, True), repeat=len(values)):
        try:
            evaluate(elements, dict(zip(values, bits, strict=True)).__getitem__)
        except ConditionCrash:
            return True
    return False


@pytest.mark.parametrize("start", range(0, len(VECTORS), CHUNK))
def test_condition_vectors(start: int) -> None:
    chunk = VECTORS[start : start + CHUNK]
    text = "\n".join(_rule(start + j, cond, values) for j, (_, cond, values, _) in enumerate(chunk))
    errors: dict[str, str] = {}
    try:
        Engine().load_text(text, "vectors")
    except RuleLoadError as err:
        errors = {e.rule or "": e.message for e in err.errors}
    good = "\n".join(
        _rule(start + j, cond, values)
        for j, (_, cond, values, _) in enumerate(chunk)
        if f"v{start + j}" not in errors
    )
    engine = Engine()
    engine.load_text(good, "vectors")
    data = {
        f"{op[1:]}{start + j}": "1" if v else "0"
        for j, (_, _, values, _) in enumerate(chunk)
        for op, v in values.items()
    }
    matched = set(engine.match({"Event": {"EventData": data, "System": {}}}).signature)
    mismatches = []
    for j, (where, cond, values, expected) in enumerate(chunk):
        name = f"v{start + j}"
        if expected in ("ERR", "PANIC") or expected.startswith("UNK"):
            want_kind = {"ERR": "Failed to parse", "PANIC": "crash"}.get(expected, "Unknown operand")
            if name not in errors or want_kind not in errors[name]:
                mismatches.append(
                    f"{where}: {cond!r} {values}: gene {expected}, vigil {errors.get(name, 'loaded')}"
                )
        elif name in errors:
            if not ("crash" in errors[name] and _crashes_elsewhere(cond, values)):
                mismatches.append(
                    f"{where}: {cond!r} {values}: gene {expected}, vigil load error {errors[name]}"
                )
        elif (name in matched) != (expected == "1"):
            mismatches.append(f"{where}: {cond!r} {values}: gene {expected}, vigil {int(name in matched)}")
    assert not mismatches, "\n".join(mismatches)


def test_value_dependent_crashes_are_known() -> None:
    """The vectors vigil rejects although gene returned a value: gene crashes on other values."""
    found = []
    for where, cond, values, expected in VECTORS:
        if expected not in ("0", "1"):
            continue
        try:
            elements = parse(cond, values)
        except ValueError:
            continue
        if _crashes_elsewhere(cond, values):
            got = evaluate(elements, values.__getitem__)
            assert got == (expected == "1"), f"{where}: literal evaluator disagrees with gene"
            found.append(where)
    assert len(found) == VALUE_DEPENDENT_CRASH, found
