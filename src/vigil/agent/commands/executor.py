"""Runs one command received from the manager and builds the WHIDS ``EndpointCommand`` result.

A command is either a built-in (:mod:`vigil.agent.commands.builtins`), the ``osquery`` alias, or an
executable run directly, never through a shell: the manager already split the command line into
``name`` and ``args``. Dropped files go to a fresh 0700 directory that becomes the process's working
directory and is removed afterwards; requested files are read back, base64-encoded, after the run.
"""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from vigil.agent.commands.builtins import BUILTINS, CommandContext, CommandError

logger = logging.getLogger(__name__)

__all__ = ["MAX_FETCH_BYTES", "CommandExecutor"]

MAX_FETCH_BYTES = 100 * 1024 * 1024
DEFAULT_TIMEOUT_S = 15.0
_NS = 1_000_000_000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class CommandExecutor:
    """Executes manager commands on this host."""

    def __init__(self, context: CommandContext | None = None, *, extra_path: list[str] | None = None) -> None:
        self.context = context or CommandContext()
        self.extra_path = extra_path or []

    def execute(self, command: dict[str, Any]) -> dict[str, Any]:
        """Run ``command`` (an EndpointCommand from ``GET /commands``) and return it completed."""
        result = dict(command)
        result.update({"stdout": "", "stderr": "", "error": "", "json": None, "completed": True})
        name = command.get("name")
        args = command.get("args") or []
        if (
            not isinstance(name, str)
            or not name
            or not isinstance(args, list)
            or not all(isinstance(a, str) for a in args)
        ):
            result["error"] = (
                "invalid command: 'name' must be a non-empty string and 'args' a list of strings"
            )
            return result
        timeout_ns = command.get("timeout")
        timeout = DEFAULT_TIMEOUT_S if not isinstance(timeout_ns, int) or timeout_ns < 0 else timeout_ns / _NS
        started = time.monotonic()
        if name in BUILTINS:
            function, _ = BUILTINS[name]
            try:
                value = function(self.context, args)
                result["json"] = value
                result["stdout"] = _b64(orjson.dumps(value, option=orjson.OPT_INDENT_2))
                result["expect-json"] = True
            except CommandError as exc:
                result["error"] = str(exc)
            except OSError as exc:
                result["error"] = f"{name}: {exc}"
        else:
            self._run_process(name, args, timeout, command, result)
        self._fetch(command, result)
        result["drop"] = [
            {k: v for k, v in d.items() if k != "data"}
            for d in command.get("drop") or []
            if isinstance(d, dict)
        ]
        logger.info(
            "command %s %s done in %.2fs: %s", name, args, time.monotonic() - started, result["error"] or "ok"
        )
        return result

    def _run_process(
        self, name: str, args: list[str], timeout: float, command: dict[str, Any], result: dict[str, Any]
    ) -> None:
        expect_json = bool(command.get("expect-json"))
        if name == "osquery":
            name, args, expect_json = "osqueryi", ["--json", "-A", *args], True
        search_path = ":".join(
            [*self.extra_path, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        )
        executable = name if "/" in name else shutil.which(name, path=search_path)
        if executable is None or not Path(executable).is_file():
            hint = " (osquery is not installed on this host)" if name == "osqueryi" else ""
            result["error"] = f"command not found: {name}{hint}"
            return
        with tempfile.TemporaryDirectory(prefix="vigil-cmd-") as workdir:
            Path(workdir).chmod(0o700)
            error = self._drop(command, Path(workdir))
            if error:
                result["error"] = error
                return
            try:
                completed = subprocess.run(
                    [executable, *args],
                    cwd=workdir,
                    capture_output=True,
                    timeout=timeout or None,
                    stdin=subprocess.DEVNULL,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                result["stdout"] = _b64(exc.stdout or b"")
                result["stderr"] = _b64(exc.stderr or b"")
                result["error"] = f"timeout: {name} still running after {timeout:g}s, killed"
                return
            except OSError as exc:
                result["error"] = f"{name}: {exc}"
                return
        result["stdout"] = _b64(completed.stdout)
        result["stderr"] = _b64(completed.stderr)
        if completed.returncode != 0:
            result["error"] = f"exit status {completed.returncode}"
        if expect_json:
            try:
                result["json"] = orjson.loads(completed.stdout)
            except orjson.JSONDecodeError as exc:
                result["error"] = result["error"] or f"output is not JSON: {exc}"

    @staticmethod
    def _drop(command: dict[str, Any], workdir: Path) -> str:
        for item in command.get("drop") or []:
            if not isinstance(item, dict):
                return "invalid drop entry: expected an object"
            name = item.get("name")
            if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\x00" in name:
                return f"invalid drop file name {name!r}: a plain file name is required"
            try:
                data = base64.b64decode(item.get("data") or "", validate=True)
            except ValueError:
                return f"drop file {name!r}: data is not valid base64"
            target = workdir / name
            target.write_bytes(data)
            target.chmod(0o700)
        return ""

    @staticmethod
    def _fetch(command: dict[str, Any], result: dict[str, Any]) -> None:
        requested = command.get("fetch") or {}
        if not isinstance(requested, dict):
            return
        fetched: dict[str, dict[str, str]] = {}
        for raw_path in requested:
            entry = {"name": Path(raw_path).name, "data": "", "error": ""}
            path = Path(raw_path)
            try:
                if not path.is_absolute():
                    raise ValueError("path must be absolute")
                if not path.is_file():
                    raise ValueError("not a regular file")
                if path.stat().st_size > MAX_FETCH_BYTES:
                    raise ValueError(f"larger than {MAX_FETCH_BYTES} bytes")
                entry["data"] = _b64(path.read_bytes())
            except (OSError, ValueError) as exc:
                entry["error"] = str(exc)
            fetched[raw_path] = entry
        result["fetch"] = fetched
