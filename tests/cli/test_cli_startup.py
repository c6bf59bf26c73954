"""What `vigil` does before and after a command: only the command's module is imported, and
`vigil scan` exits without the interpreter's last garbage collection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vigil.cli import COMMANDS, build_parser, main

GENE_RULES = Path("../shared/data/gene-rules/rules")


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout


def test_only_the_module_of_the_command_is_imported(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    out = _python(
        "import sys\nfrom vigil.cli import main\n"
        f"main(['-v', 'scan', '--rules', {str(GENE_RULES)!r}, {str(empty)!r}])\n"
        "print(sorted(m for m in sys.modules if m.startswith('vigil.cli.') or m == 'vigil.events.evtx'))\n"
    )
    assert out.strip() == "['vigil.cli.scan']"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name, help_text in COMMANDS.items():
        assert name in out and help_text.split()[0] in out


def test_an_unknown_command_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bogus"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_gets_its_own_parser_with_the_same_help(name: str) -> None:
    """The bare parser given to a command that is not run carries the help its module gives."""
    full = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    bare = build_parser("scan" if name != "scan" else "rules")._subparsers._group_actions[0]  # type: ignore[union-attr]
    helps = {action.dest: action.help for action in full._choices_actions}
    assert helps[name] == COMMANDS[name]
    assert {action.dest: action.help for action in bare._choices_actions} == helps
    assert full.choices[name].format_usage() != f"usage: vigil {name} [-h]\n"  # the real one


def test_scan_as_a_process_skips_the_last_collection(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"Event": {"System": {"EventID": 1}}}\n')
    out = tmp_path / "out.jsonl"
    code = (
        "import gc, sys\nfrom vigil.cli import entry\n"
        f"sys.argv = ['vigil', 'scan', '--all', '--rules', {str(GENE_RULES)!r}, '--output', {str(out)!r}, {str(events)!r}]\n"
        "code = entry()\nprint('scan', code, gc.get_freeze_count() > 0, file=sys.stderr)\n"
        "sys.argv = ['vigil', 'rules', 'list', "
        f"{str(GENE_RULES)!r}]\n"
        "gc.unfreeze()\nprint('rules', entry(), gc.get_freeze_count() > 0, file=sys.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    marks = [line for line in res.stderr.splitlines() if line.startswith(("scan ", "rules "))]
    assert marks == ["scan 0 True", "rules 0 False"]  # other commands exit as usual
    assert out.read_bytes().count(b"\n") == 1  # written and closed before the exit


def test_the_evtx_reader_is_imported_on_first_use() -> None:
    out = _python(
        "import sys\nimport vigil.events.jsonl\nprint('vigil.events.evtx' in sys.modules)\n"
        "from vigil.events import EvtxError, iter_evtx, read_evtx\n"
        "from vigil.events import evtx\n"
        "print(iter_evtx is evtx.iter_evtx and read_evtx is evtx.read_evtx and EvtxError is evtx.EvtxError)\n"
    )
    assert out.split() == ["False", "True"]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import vigil.events

        _ = vigil.events.nothing
