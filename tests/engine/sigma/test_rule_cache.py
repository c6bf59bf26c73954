"""The on-disk cache of compiled Sigma files: same results with and without it, and it trusts
nothing it did not write itself (owner, mode, shape), falling back to compiling."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil.engine import Engine, RuleLoadError, runtime
from vigil.engine.ir import (
    And,
    CidrMatch,
    Const,
    ContainerMatch,
    Exists,
    FieldRefMatch,
    FlagMatch,
    KeywordMatch,
    Not,
    NumCmp,
    Or,
    RegexMatch,
    RuleIR,
    SourceLocation,
    StrMatch,
)
from vigil.engine.rule_cache import RuleStore, configure_rule_cache, open_rule_store
from vigil.engine.sigma import SigmaRuleSet, frontend, load_sigma
from vigil.engine.sigma.codec import CacheFormatError, decode_file_result, encode_file_result
from vigil.engine.sigma.errors import Rejection
from vigil.engine.sigma.results import CompiledRule, FileResult

SIGMA_RULES = Path(__file__).resolve().parents[3] / "../shared/data/sigma/rules"
EVTX = Path(__file__).resolve().parents[3] / "../shared/data/evtx/evtx"

RULE = """title: {title}
id: 5f0c3cb8-7c3c-4a53-9c1f-0000000000{n:02d}
logsource:
    product: windows
    category: process_creation
detection:
    sel:
        Image|endswith: '\\{image}'
        CommandLine|contains|all: ['-enc', 'Hidden']
    sel2:
        CommandLine|re: '(?i)ab+c'
    condition: sel or sel2
level: high
tags:
    - attack.execution
    - attack.t1059.001
"""
UNSUPPORTED = """title: Renamed
id: 5f0c3cb8-7c3c-4a53-9c1f-000000000099
logsource:
    product: windows
    category: file_rename
detection:
    sel:
        TargetFilename|endswith: '.locked'
    condition: sel
"""


def _rule(n: int, image: str = "evil.exe") -> str:
    return RULE.format(title=f"Rule {n}", n=n, image=image)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "cache"
    configure_rule_cache(enabled=True, directory=directory)
    frontend._CACHE.clear()
    yield directory
    configure_rule_cache()
    frontend._CACHE.clear()


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    root = tmp_path / "rules"
    (root / "sub").mkdir(parents=True)
    (root / "a.yml").write_text(_rule(1))
    (root / "b.yml").write_text(_rule(2, "bad.exe") + "---\n" + _rule(3, "worse.exe"))
    (root / "sub" / "c.yml").write_text(UNSUPPORTED)
    (root / "sub" / "d.yaml").write_text(_rule(4))
    return root


def _pack_files(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.iterdir() if p.suffix == ".json")


def _same(a: SigmaRuleSet, b: SigmaRuleSet) -> None:
    assert a.rules == b.rules
    assert a.rejections == b.rejections
    assert a.correlations == b.correlations


def test_cached_load_equals_fresh_load(cache_dir: Path, rules: Path) -> None:
    fresh = load_sigma([rules], use_cache=False)
    assert not cache_dir.exists()  # use_cache=False neither reads nor writes
    cold = load_sigma([rules])
    assert len(_pack_files(cache_dir)) == 2  # one pack per directory
    warm = load_sigma([rules])
    assert [r.ir.name for r in fresh.rules] == ["Rule 1", "Rule 2", "Rule 3", "Rule 4"]
    assert [r.kind for r in fresh.rejections] == ["logsource"]
    _same(fresh, cold)
    _same(fresh, warm)
    assert oct(cache_dir.stat().st_mode & 0o777) == "0o700"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in _pack_files(cache_dir))


def test_warm_load_is_served_from_the_cache_without_pysigma(cache_dir: Path, rules: Path) -> None:
    load_sigma([rules])
    code = (
        "import sys; from vigil.engine.sigma import load_sigma; r = load_sigma([sys.argv[1]]); "
        "print(len(r.rules), len(r.rejections), 'sigma' in sys.modules, 'yaml' in sys.modules)"
    )
    env = {**os.environ, "VIGIL_RULE_CACHE_DIR": str(cache_dir)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(rules)], env=env, capture_output=True, text=True, check=False
    )
    assert out.stdout.split() == ["4", "1", "False", "False"], out.stderr


def test_whole_sigmahq_set_and_its_detections_are_the_same_from_the_cache(cache_dir: Path) -> None:
    paths = [SIGMA_RULES / "windows", SIGMA_RULES / "linux"]
    fresh = load_sigma(paths, use_cache=False)
    load_sigma(paths)
    warm = load_sigma(paths)
    _same(fresh, warm)
    assert len(warm.rules) > 2500
    engines = []
    for result in (fresh, warm):
        engine = Engine()
        for rule in result.rules:
            engine.add_rule(rule.ir)
        engines.append(engine)
    from vigil.events.evtx import read_evtx

    files = sorted(EVTX.rglob("*.evtx"))[:40]
    matched = 0
    for f in files:
        for event in read_evtx(f, on_error=lambda e: None):
            a, b = (e.match(event) for e in engines)
            assert (a.signature, a.criticality, a.sigma_ids) == (b.signature, b.criticality, b.sigma_ids)
            matched += bool(a.signature)
    assert matched > 0


def test_engine_warns_about_skipped_rules_on_a_cached_load_too(
    cache_dir: Path, rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def load() -> tuple[list[str], list[str]]:
        frontend._CACHE.clear()  # a new process: only the disk cache is left
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            engine = Engine()
            engine.load_path(rules)
        return [r.name for r in engine.rules], [r.getMessage() for r in caplog.records]

    configure_rule_cache(enabled=False)
    uncached = load()
    configure_rule_cache(enabled=True, directory=cache_dir)
    cold, warm = load(), load()
    assert _pack_files(cache_dir)
    assert uncached == cold == warm
    assert uncached[0] == ["Rule 1", "Rule 2", "Rule 3", "Rule 4"]
    (warning,) = uncached[1]
    assert "sigma rule skipped" in warning and "c.yml" in warning and "file_rename" in warning


def test_malformed_rules_are_reported_the_same_from_the_cache(cache_dir: Path, rules: Path) -> None:
    (rules / "e.yml").write_text(
        "title: broken\ndetection:\n    sel:\n        a: 1\n    condition: sel and nope\n"
    )
    errors = []
    for _ in range(3):
        frontend._CACHE.clear()
        with pytest.raises(RuleLoadError) as err:
            Engine().load_path(rules)
        errors.append([str(e) for e in err.value.errors])
    assert errors[0] == errors[1] == errors[2]
    assert "e.yml" in errors[0][0]


def test_a_rule_file_changed_by_one_byte_is_compiled_again(cache_dir: Path, rules: Path) -> None:
    before = load_sigma([rules])
    text = (rules / "a.yml").read_text()
    (rules / "a.yml").write_text(text.replace("evil.exe", "evil.exf"))  # same size, one byte
    after = load_sigma([rules])
    _same(after, load_sigma([rules], use_cache=False))
    assert before.rules[0] != after.rules[0]
    assert "evil.exf" in repr(after.rules[0].ir.condition)


def test_placeholder_options_are_part_of_the_key(cache_dir: Path, tmp_path: Path) -> None:
    from vigil.engine.sigma import CompileOptions

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "x.yml").write_text(
        _rule(5).replace("CommandLine|re: '(?i)ab+c'", "User|expand: '%admins%'")
    )
    one = load_sigma([tmp_path / "p"], CompileOptions(placeholders={"admins": ["root"]}))
    two = load_sigma([tmp_path / "p"], CompileOptions(placeholders={"admins": ["toor"]}))
    assert "root" in repr(one.rules[0].ir.condition) and "toor" in repr(two.rules[0].ir.condition)


def test_a_moved_rule_directory_still_hits_and_names_the_new_paths(cache_dir: Path, rules: Path) -> None:
    load_sigma([rules])
    moved = rules.parent / "moved"
    shutil.copytree(rules, moved)
    fresh = load_sigma([moved], use_cache=False)
    _same(fresh, load_sigma([moved]))
    assert all(str(moved) in r.path for r in fresh.rejections)


def _poison(pack: Path) -> None:
    """Rewrite a pack so that it would rename every rule it holds, keeping it well-formed."""
    entry = json.loads(pack.read_text())
    for _, (_, value) in entry["value"]["files"].items():
        for rule in value["rules"]:
            rule["name"] = "POISONED"
    pack.write_text(json.dumps(entry))


def _names(rules: Path) -> list[str]:
    return [r.ir.name for r in load_sigma([rules]).rules]


def test_a_well_formed_entry_is_used_which_proves_the_poison_tests_below(
    cache_dir: Path, rules: Path
) -> None:
    load_sigma([rules])
    for pack in _pack_files(cache_dir):
        _poison(pack)
    assert "POISONED" in _names(rules)


def test_an_entry_owned_by_another_user_is_ignored(
    cache_dir: Path, rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    load_sigma([rules])
    for pack in _pack_files(cache_dir):
        _poison(pack)
        os.chown(pack, 65534, 65534)
    with caplog.at_level(logging.DEBUG, logger="vigil.engine.rule_cache"):
        assert "POISONED" not in _names(rules)
    assert "owned by uid 65534" in caplog.text
    assert all(p.stat().st_uid == os.geteuid() for p in _pack_files(cache_dir))  # replaced by ours
    _same(load_sigma([rules]), load_sigma([rules], use_cache=False))


@pytest.mark.parametrize("mode", [0o644, 0o660, 0o606])
def test_an_entry_others_may_read_or_write_is_ignored(cache_dir: Path, rules: Path, mode: int) -> None:
    load_sigma([rules])
    for pack in _pack_files(cache_dir):
        _poison(pack)
        pack.chmod(mode)
    assert "POISONED" not in _names(rules)


@pytest.mark.parametrize("mode", [0o755, 0o770, 0o707])
def test_a_directory_others_may_enter_is_not_used(cache_dir: Path, rules: Path, mode: int) -> None:
    load_sigma([rules])
    for pack in _pack_files(cache_dir):
        _poison(pack)
    cache_dir.chmod(mode)
    before = {p.name: p.stat().st_mtime_ns for p in _pack_files(cache_dir)}
    assert "POISONED" not in _names(rules)
    assert {p.name: p.stat().st_mtime_ns for p in _pack_files(cache_dir)} == before  # nor written


def test_a_directory_owned_by_another_user_or_a_symlink_is_not_used(cache_dir: Path, rules: Path) -> None:
    load_sigma([rules])
    for pack in _pack_files(cache_dir):
        _poison(pack)
    link = cache_dir.parent / "link"
    link.symlink_to(cache_dir)
    configure_rule_cache(enabled=True, directory=link)
    assert "POISONED" not in _names(rules)
    if os.geteuid() == 0:
        configure_rule_cache(enabled=True, directory=cache_dir)
        os.chown(cache_dir, 65534, 65534)
        assert "POISONED" not in _names(rules)


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b"\x00\xff" * 50,  # not JSON
        lambda b: b"[]",  # JSON, not an entry
        lambda b: b.replace(b'"format":', b'"formaat":', 1),  # an entry of another shape
        lambda b: b.replace(b'["S",', b'["Q",', 1),  # an unknown node
        lambda b: b.replace(b'"criticality":8', b'"criticality":"8"', 1),  # a field of another type
        lambda b: b.replace(b'"key":"', b'"key":"0', 1),  # the entry of another key
    ],
)
def test_a_damaged_entry_is_compiled_again_and_rewritten(
    cache_dir: Path, rules: Path, damage: object, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = load_sigma([rules], use_cache=False)
    load_sigma([rules])
    for pack in _pack_files(cache_dir):
        pack.write_bytes(damage(pack.read_bytes()))  # type: ignore[operator]
    with caplog.at_level(logging.DEBUG):
        _same(fresh, load_sigma([rules]))
    assert "rule cache" in caplog.text
    _same(fresh, load_sigma([rules]))
    for pack in _pack_files(cache_dir):  # every damaged pack was rewritten whole
        assert json.loads(pack.read_bytes())["value"]["format"] == 1


def test_the_store_is_bounded(tmp_path: Path) -> None:
    configure_rule_cache(enabled=True, directory=tmp_path / "store")
    try:
        store = open_rule_store()
        assert isinstance(store, RuleStore)
        with store:
            for i in range(40):
                store.put(f"{i:064x}", {"n": i})
                os.utime(tmp_path / "store" / f"{i:064x}.json", (1000 + i, 1000 + i))
            assert store.prune(max_entries=20, max_bytes=1 << 30) == 25  # down to 3/4 of 20
            left = sorted(p.name for p in (tmp_path / "store").iterdir())
            assert left == [f"{i:064x}.json" for i in range(25, 40)]  # the oldest went first
            assert store.get(f"{39:064x}") == {"n": 39} and store.get(f"{0:064x}") is None
    finally:
        configure_rule_cache()


def test_a_pack_keeps_only_the_files_of_its_directory(cache_dir: Path, rules: Path) -> None:
    load_sigma([rules])
    (rules / "a.yml").unlink()
    (rules / "b.yml").write_text(_rule(2, "changed.exe"))
    load_sigma([rules])
    packs = [json.loads(p.read_text())["value"] for p in _pack_files(cache_dir)]
    top = next(p for p in packs if p["dir"] == str(rules))
    assert sorted(top["files"]) == ["b.yml"]


def test_disabled_by_environment(tmp_path: Path, rules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_NO_RULE_CACHE", "1")
    monkeypatch.setenv("VIGIL_RULE_CACHE_DIR", str(tmp_path / "never"))
    configure_rule_cache()
    load_sigma([rules])
    assert not (tmp_path / "never").exists()


def test_codec_round_trips_every_node_kind() -> None:
    runtime.note_program_size("a+", 5)
    condition = And(
        (
            Or((StrMatch(("Event", "EventData", "A"), "eq", "x", True), RegexMatch(("Event", "B"), "a+"))),
            Not(Exists(("Event", "C"), present=False)),
            NumCmp(("Event", "D"), "<=", float("inf"), "plain"),
            FlagMatch(("Event", "E"), 4),
            FieldRefMatch(("Event", "F"), ("Event", "G"), "startswith", True),
            ContainerMatch(("Event", "H"), "(?P<x>.)", "x", "c"),
            CidrMatch(("Event", "I"), ("10.0.0.0/8", "::1/128")),
            KeywordMatch("regex", "a|b", False, ("Event", "EventData")),
            Const(True),
        )
    )
    ir = RuleIR(
        name="All",
        condition=condition,
        events=(("Chan", (1, 2)), ("Other", ())),
        criticality=8,
        tags=("attack.t1059",),
        source=SourceLocation("/r/x.yml", 3),
        sigma_id="id",
    )
    result = FileResult(
        [CompiledRule(ir, "scan")],
        [Rejection("/r/x.yml", 0, None, None, "parse", "cannot read: /r/x.yml")],
        [Rejection("/r/x.yml", 9, "i", "T", "logsource", "no", correlation=False)],
    )
    data = json.loads(json.dumps(encode_file_result(result, "/r/x.yml")))
    assert decode_file_result(data, "/r/x.yml") == result
    with pytest.raises(CacheFormatError):  # a reason quoting the former path cannot be rebased
        decode_file_result(data, "/s/x.yml")
    data["file_rejections"] = []
    moved = decode_file_result(data, "/s/x.yml")
    assert moved.rules[0].ir.source == SourceLocation("/s/x.yml", 3)
    assert moved.rule_rejections[0].path == "/s/x.yml"


@pytest.fixture
def parallel_runs(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record whether each parallel compile ran (threads left by other tests turn it off)."""
    from vigil.engine.sigma import parallel

    ran: list[bool] = []
    original = parallel.compile_in_parallel

    def spy(jobs: list[object], opts: object) -> object:
        result = original(jobs, opts)  # type: ignore[arg-type]
        ran.append(result is not None)
        return result

    monkeypatch.setattr(parallel, "compile_in_parallel", spy)
    return ran


def _rerun_alone_if_threads_run(request: pytest.FixtureRequest) -> bool:
    """True when this test was run (and passed) in a pytest process of its own: with another
    thread running in this one (left by an earlier test of the suite), the loader does not fork."""
    import threading

    if threading.active_count() == 1:
        return False
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", request.node.nodeid],
        cwd=request.config.rootpath,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "1 passed" in out.stdout and "skipped" not in out.stdout, out.stdout[-2000:]
    return True


def test_compiling_on_several_cores_gives_the_same_result(
    monkeypatch: pytest.MonkeyPatch, parallel_runs: list[bool], request: pytest.FixtureRequest
) -> None:
    if _rerun_alone_if_threads_run(request):
        return
    paths = [SIGMA_RULES / "windows", SIGMA_RULES / "linux"]
    monkeypatch.setenv("VIGIL_SIGMA_JOBS", "1")
    serial = load_sigma(paths, use_cache=False)
    monkeypatch.setenv("VIGIL_SIGMA_JOBS", "2")
    parallel = load_sigma(paths, use_cache=False)
    assert parallel_runs == [False, True]
    _same(serial, parallel)


def test_engine_load_compiled_on_several_cores_warns_like_one_by_one(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    parallel_runs: list[bool],
    request: pytest.FixtureRequest,
) -> None:
    from vigil.engine.sigma.parallel import MIN_FILES

    if _rerun_alone_if_threads_run(request):
        return
    root = tmp_path / "many"
    root.mkdir()
    for n in range(MIN_FILES):
        (root / f"r{n:03d}.yml").write_text(_rule(n % 100).replace("Rule ", f"Rule {n} "))
    (root / "skipped.yml").write_text(UNSUPPORTED)
    configure_rule_cache(enabled=False)
    try:
        seen = []
        for jobs in ("1", "2"):
            monkeypatch.setenv("VIGIL_SIGMA_JOBS", jobs)
            frontend._CACHE.clear()
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                engine = Engine()
                engine.load_path(root)
            seen.append(([r.ir for r in engine.rules], [r.getMessage() for r in caplog.records]))
    finally:
        configure_rule_cache()
        frontend._CACHE.clear()
    assert True in parallel_runs
    assert seen[0] == seen[1]
    assert len(seen[0][0]) == MIN_FILES and len(seen[0][1]) == 1


def test_a_first_engine_load_in_a_new_process_uses_the_workers(tmp_path: Path) -> None:
    """The Sigma front end is imported by the engine on its first .yml file; its prepare hook must
    still see the whole load (workers' CPU shows up as the process's children's)."""
    from vigil.engine.sigma.parallel import MIN_FILES

    root = tmp_path / "many"
    root.mkdir()
    for n in range(MIN_FILES):
        (root / f"r{n:03d}.yml").write_text(_rule(n % 100).replace("Rule ", f"Rule {n} "))
    code = (
        "import resource, sys; from vigil.engine import Engine; e = Engine(); e.load_path(sys.argv[1]); "
        "u = resource.getrusage(resource.RUSAGE_CHILDREN); print(len(e.rules), u.ru_utime + u.ru_stime > 0)"
    )
    env = {**os.environ, "VIGIL_SIGMA_JOBS": "2", "VIGIL_NO_RULE_CACHE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(root)], env=env, capture_output=True, text=True, check=False
    )
    assert out.stdout.split() == [str(MIN_FILES), "True"], out.stderr


def test_decoding_any_damage_to_a_valid_entry_is_a_result_or_a_format_error(
    cache_dir: Path, rules: Path
) -> None:
    """Replace every value of a real entry, one at a time, by values of other shapes: decoding
    gives a result or CacheFormatError, never another exception (which would fail the load)."""
    import copy
    import random

    load_sigma([rules])
    pack = json.loads(next(p for p in _pack_files(cache_dir)).read_text())["value"]
    # the entry with the most values: which file the pack lists first varies from run to run
    entry = max((e[1] for _, e in sorted(pack["files"].items())), key=lambda e: len(json.dumps(e)))
    replacements: list[object] = [None, 0, -1, 2.5, True, "", "x", [], [[]], {}, {"a": 1}, ["S"], ["&", "x"]]

    def slots(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        out: list[tuple[object, ...]] = [path]
        if isinstance(value, dict):
            for k, v in value.items():
                out += slots(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                out += slots(v, (*path, i))
        return out

    rng = random.Random(8)
    tried = 0
    for path in slots(entry):
        for replacement in rng.sample(replacements, 4):
            damaged = copy.deepcopy(entry)
            if not path:
                damaged = replacement
            else:
                parent = damaged
                for key in path[:-1]:
                    parent = parent[key]  # type: ignore[index]
                parent[path[-1]] = copy.deepcopy(replacement)  # type: ignore[index]
            try:
                decode_file_result(damaged, str(rules / "a.yml"))
            except CacheFormatError:
                pass
            tried += 1
    assert tried > 200
