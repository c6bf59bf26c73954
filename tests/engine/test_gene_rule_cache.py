"""Gene rule sets from the on-disk rule cache: the same rules, reports and messages as a fresh load,
and a miss on any change of what the load depends on (files, templates, containers, log level)."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil.engine import Engine, RuleLoadError, gene_cache
from vigil.engine.rule_cache import configure_rule_cache

GENE_RULES = Path(__file__).resolve().parents[2] / "../shared/data/gene-rules/rules"


@pytest.fixture
def cache_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "cache"
    configure_rule_cache(enabled=True, directory=directory)
    try:
        yield directory
    finally:
        configure_rule_cache(enabled=None, directory=None)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """A copy of the public gene-rules (134 rules, templates, six rules with unknown containers)."""
    return Path(shutil.copytree(GENE_RULES, tmp_path / "rules"))


def _entries(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.iterdir() if p.suffix == ".json") if cache_dir.exists() else []


def _loaded(path: Path, containers: dict[str, list[str]] | None = None) -> Engine:
    engine = Engine()
    for name, values in (containers or {}).items():
        engine.add_container(name, values)
    engine.load_path(path)
    return engine


def _view(engine: Engine) -> list[tuple[object, ...]]:
    return [(r.ir, r.disabled, json.dumps(r.raw, sort_keys=True)) for r in engine.rules]


def test_a_cached_set_loads_the_same_rules(cache_dir: Path, rules: Path) -> None:
    fresh = _loaded(rules)
    assert len(_entries(cache_dir)) == 1
    cached = _loaded(rules)
    assert _view(cached) == _view(fresh)
    assert len(fresh.rules) == 134 and sum(1 for r in fresh.rules if r.disabled) == 6


def test_a_hit_skips_decoding_and_compiling(
    cache_dir: Path, rules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _loaded(rules)

    def no_compile(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled on a hit")

    monkeypatch.setattr("vigil.engine.gene.rules.compile_rule", no_compile)
    assert len(_loaded(rules).rules) == 134


def test_a_hit_logs_what_the_load_logged(
    cache_dir: Path, rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="vigil.engine"):
        _loaded(rules)
        fresh = [
            (r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("vigil.engine")
        ]
        caplog.clear()
        _loaded(rules)
        cached = [
            (r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("vigil.engine")
        ]
    assert cached == fresh
    assert any("Unknown container" in message for _, _, message in fresh)


def test_the_log_level_is_part_of_the_key(
    cache_dir: Path, rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry written at WARNING holds no INFO message, so an INFO load must not use it."""
    _loaded(rules)
    with caplog.at_level(logging.INFO, logger="vigil.engine"):
        _loaded(rules)
    assert len(_entries(cache_dir)) == 2


@pytest.mark.parametrize("change", ["rule byte", "template", "container", "new file"])
def test_any_change_of_what_the_load_reads_is_a_miss(cache_dir: Path, rules: Path, change: str) -> None:
    fresh = _loaded(rules)
    containers: dict[str, list[str]] = {}
    if change == "rule byte":
        path = rules / "cmd.gen"
        path.write_text(path.read_text().replace('"Criticality": ', '"Criticality": 1', 1))
    elif change == "template":
        toml = rules / "regexp.toml"  # a template a rule uses (informative.gen), another value
        lines = toml.read_text().splitlines()
        lines = [
            ("suspicious = '(?i:vigil-test)'" if line.startswith("suspicious ") else line) for line in lines
        ]
        toml.write_text("\n".join(lines) + "\n")
    elif change == "container":
        containers = {"blacklist": ["x"]}
    else:
        (rules / "zzz.gen").write_text(
            json.dumps(
                {
                    "Name": "VigilExtra",
                    "Meta": {
                        "Events": {"Microsoft-Windows-Sysmon/Operational": [1]},
                        "Criticality": 3,
                        "Schema": "2.0.0",
                    },
                    "Matches": ["$a: Image ~= 'x'"],
                    "Condition": "$a",
                }
            )
        )
    changed = _loaded(rules, containers)
    assert len(_entries(cache_dir)) == 2
    assert _view(changed) != _view(fresh)
    assert _view(changed) == _view(_fresh(rules, containers, cache_dir))


def _fresh(rules: Path, containers: dict[str, list[str]], cache_dir: Path) -> Engine:
    configure_rule_cache(enabled=False)
    try:
        return _loaded(rules, containers)
    finally:
        configure_rule_cache(enabled=True, directory=cache_dir)  # as the fixture set it


def test_a_set_with_errors_is_not_stored_and_reports_as_always(cache_dir: Path, rules: Path) -> None:
    (rules / "broken.gen").write_text('{"Name": "Broken", "Meta": {}, "Matches": ["$a: Image ~= \'(\'"]}')
    with pytest.raises(RuleLoadError) as first:
        _loaded(rules)
    with pytest.raises(RuleLoadError) as second:
        _loaded(rules)
    assert [str(e) for e in first.value.errors] == [str(e) for e in second.value.errors]
    assert _entries(cache_dir) == []


def test_a_name_already_loaded_is_reported_on_a_hit_too(cache_dir: Path, rules: Path) -> None:
    _loaded(rules)
    engine = Engine()
    engine.load_path(rules)
    with pytest.raises(RuleLoadError, match="already exists"):
        engine.load_path(rules)


def test_a_damaged_entry_is_a_miss_and_is_stored_again(cache_dir: Path, rules: Path) -> None:
    fresh = _loaded(rules)
    (entry,) = _entries(cache_dir)
    data = json.loads(entry.read_text())
    data["value"]["rules"][3][0]["condition"] = ["?", 1]
    entry.write_text(json.dumps(data))
    assert gene_cache.load(entry.stem) is None
    assert _view(_loaded(rules)) == _view(fresh)  # loaded from the files...
    assert gene_cache.load(entry.stem) is not None  # ...and stored again


def test_no_cache_when_disabled(tmp_path: Path, rules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "cache"
    configure_rule_cache(enabled=False, directory=directory)
    try:
        _loaded(rules)
        _loaded(rules)
    finally:
        configure_rule_cache(enabled=None, directory=None)
    assert _entries(directory) == []


def test_scan_output_is_the_same_from_the_cache(tmp_path: Path, rules: Path) -> None:
    """`vigil scan` over the gene test events, with a cold and then a warm cache, prints the same."""
    inputs = [str(Path(__file__).resolve().parents[2] / "../shared/data/events/whids-sample-events.jsonl")]
    env_dir = tmp_path / "scan-cache"
    outputs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "vigil", "scan", "--all", "--rules", str(rules), *inputs],
            capture_output=True,
            check=False,
            env={**_env(), "VIGIL_RULE_CACHE_DIR": str(env_dir)},
        )
        assert done.returncode == 0, done.stderr
        messages = [re.sub(rb"^\d{4}-\d\d-\d\d [\d:,]+ ", b"", line) for line in done.stderr.splitlines()]
        timing = (b"seconds", b"events/s")
        outputs.append((done.stdout, [m for m in messages if not any(t in m for t in timing)]))
    assert outputs[0] == outputs[1]
    assert len(_entries(env_dir)) == 1


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("VIGIL_NO_RULE_CACHE", "VIGIL_RULE_CACHE_DIR")}


def test_a_hit_does_not_import_the_gene_front_end(tmp_path: Path, rules: Path) -> None:
    script = (
        "import sys\nfrom vigil.engine import Engine\n"
        f"Engine().load_path({str(rules)!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith('vigil.engine.gene.')))\n"
    )
    env = {**_env(), "VIGIL_RULE_CACHE_DIR": str(tmp_path / "cache")}
    runs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
        for _ in range(2)
    ]
    assert "vigil.engine.gene.rules" in runs[0].stdout  # compiled: a miss
    assert runs[1].stdout.strip() == "[]"  # read back: no gene module
