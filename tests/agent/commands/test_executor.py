from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.agent.commands.builtins import CommandContext
from vigil.agent.commands.executor import CommandExecutor


def _run(command: dict, context: CommandContext | None = None) -> dict:
    return CommandExecutor(context).execute(command)


def test_hash_builtin_matches_hashlib(tmp_path: Path) -> None:
    target = tmp_path / "sample.bin"
    target.write_bytes(b"vigil" * 1000)
    result = _run({"name": "hash", "args": [str(target)]})
    assert result["error"] == ""
    assert result["completed"] is True
    assert result["json"]["hashes"]["sha256"] == hashlib.sha256(b"vigil" * 1000).hexdigest()
    assert result["json"]["hashes"]["md5"] == hashlib.md5(b"vigil" * 1000).hexdigest()
    assert result["json"]["size"] == 5000


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ({"name": "hash", "args": ["relative/path"]}, "path must be absolute"),
        ({"name": "hash", "args": []}, "expected one absolute path, got 0 arguments"),
        ({"name": "ls", "args": ["/etc/passwd"]}, "is not a directory"),
        ({"name": "find", "args": ["/tmp", "("]}, "invalid regex"),
        ({"name": "terminate", "args": ["1"]}, "refusing to terminate protected process 1"),
        ({"name": "terminate", "args": ["12; rm -rf /"]}, "expected one PID"),
        ({"name": "report", "args": []}, "report: not available on this agent"),
        ({"name": "processes", "args": ["x"]}, "takes no arguments"),
        ({"name": "", "args": []}, "invalid command"),
        ({"name": "ls", "args": "not-a-list"}, "invalid command"),
        ({"name": "no-such-binary-vigil", "args": []}, "command not found: no-such-binary-vigil"),
    ],
)
def test_bad_arguments_give_a_clear_error(command: dict, message: str) -> None:
    result = _run(command)
    assert message in result["error"]
    assert result["completed"] is True


def test_terminate_refuses_the_agent_itself() -> None:
    result = _run({"name": "terminate", "args": [str(os.getpid())]})
    assert "refusing to terminate protected process" in result["error"]


def test_terminate_kills_a_process_the_test_started() -> None:
    child = subprocess.Popen(["sleep", "60"])
    try:
        result = _run({"name": "terminate", "args": [str(child.pid)]})
        assert result["error"] == ""
        assert child.wait(timeout=5) == -9
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_find_and_rexhash_walk_without_following_links(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "evil.sh").write_text("echo")
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / "loop").symlink_to(tmp_path)
    found = _run({"name": "find", "args": [str(tmp_path), r"\.sh$"]})["json"]
    assert [entry["name"] for entry in found] == ["evil.sh"]
    hashed = _run({"name": "rexhash", "args": [str(tmp_path), r"\.sh$"]})["json"]
    assert hashed[0]["hashes"]["sha256"] == hashlib.sha256(b"echo").hexdigest()


def test_external_command_runs_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "should-not-exist"
    result = _run({"name": "echo", "args": ["hello", f"; touch {marker}"]})
    assert base64.b64decode(result["stdout"]) == f"hello ; touch {marker}\n".encode()
    assert not marker.exists()


def test_dropped_files_are_in_the_working_directory_and_removed_after() -> None:
    script = "import os, sys; print(open('payload.txt').read()); print(os.getcwd())"
    result = _run(
        {
            "name": sys.executable,
            "args": ["-c", script],
            "drop": [{"name": "payload.txt", "data": base64.b64encode(b"dropped!").decode()}],
        }
    )
    out = base64.b64decode(result["stdout"]).decode().splitlines()
    assert out[0] == "dropped!"
    assert not Path(out[1]).exists()
    assert result["drop"] == [{"name": "payload.txt"}]  # data is stripped from the result


def test_drop_file_names_cannot_escape(tmp_path: Path) -> None:
    result = _run({"name": "true", "args": [], "drop": [{"name": "../evil", "data": ""}]})
    assert "invalid drop file name" in result["error"]


def test_fetch_files_come_back_base64(tmp_path: Path) -> None:
    wanted = tmp_path / "evidence.log"
    wanted.write_bytes(b"\x00\x01evidence")
    result = _run({"name": "true", "args": [], "fetch": {str(wanted): {}, "relative": {}}})
    assert base64.b64decode(result["fetch"][str(wanted)]["data"]) == b"\x00\x01evidence"
    assert result["fetch"]["relative"]["error"] == "path must be absolute"


def test_timeout_kills_the_command() -> None:
    result = _run({"name": "sleep", "args": ["30"], "timeout": 200_000_000})
    assert result["error"].startswith("timeout: sleep still running after 0.2s")


def test_expect_json_parses_stdout() -> None:
    result = _run({"name": "echo", "args": ['{"a": 1}'], "expect-json": True})
    assert result["json"] == {"a": 1}


def test_osquery_alias_says_when_osquery_is_missing() -> None:
    result = _run({"name": "osquery", "args": ["processes"]})
    if result["error"].startswith("command not found"):
        assert "osquery is not installed" in result["error"]
    else:  # osqueryi is installed on this machine: its JSON output is parsed
        assert isinstance(result["json"], list)


def test_drivers_reports_kernels_without_modules() -> None:
    value = _run({"name": "drivers", "args": []})["json"]
    if Path("/proc/modules").exists():
        assert isinstance(value["modules"], list)
    else:
        assert "no loadable module support" in value["note"]
