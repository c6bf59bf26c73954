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


def test_scan_as_a_process_ends_without_the_interpreter_teardown(tmp_path: Path) -> None:
    """`vigil scan` ends the process itself once its streams are flushed (no atexit hooks, no
    module teardown); what it wrote to a file, stdout and stderr is complete, and its exit code
    kept. Other commands return as usual."""
    events = tmp_path / "events.jsonl"
    events.write_text('{"Event": {"System": {"EventID": 1}}}\n')
    out = tmp_path / "out.jsonl"

    def run(*scan_args: str) -> subprocess.CompletedProcess[str]:
        code = (
            "import atexit, gc, sys\nfrom vigil.cli import entry\n"
            "atexit.register(lambda: print('atexit ran', file=sys.stderr))\n"
            f"sys.argv = ['vigil', 'rules', 'list', {str(GENE_RULES)!r}]\n"
            "print('rules', entry(), gc.get_freeze_count() > 0, file=sys.stderr)\n"
            f"sys.argv = ['vigil', 'scan', *{list(scan_args)!r}]\n"
            "entry()\nprint('after scan', file=sys.stderr)\n"
        )
        return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)

    to_file = run("--all", "--rules", str(GENE_RULES), "--output", str(out), str(events))
    assert to_file.returncode == 0, to_file.stderr
    assert "rules 0 False" in to_file.stderr  # `rules list` returned, nothing frozen
    assert "events: 1" in to_file.stderr and "after scan" not in to_file.stderr
    assert "atexit ran" not in to_file.stderr
    assert out.read_bytes().count(b"\n") == 1  # written and closed before the process ended

    to_stdout = run("--all", "--rules", str(GENE_RULES), str(events))
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert to_stdout.stdout.endswith("\n")  # after `rules list`'s lines, the event, flushed
    assert '"EventID":1' in to_stdout.stdout.splitlines()[-1].replace(" ", "")

    bad = run("--rules", str(tmp_path / "missing"), str(events))
    assert bad.returncode == 2
    assert "cannot open" in bad.stderr and "after scan" not in bad.stderr


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
