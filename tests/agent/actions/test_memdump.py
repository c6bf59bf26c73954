"""memdump: an ELF core of a running test process that readelf accepts; the target keeps running."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from vigil.agent.actions.errors import TargetGone
from vigil.agent.actions.memdump import dump_to_file, read_maps, write_core

from .conftest import needs_root


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    time.sleep(0.05)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@needs_root
def test_core_of_sleep_is_accepted_by_readelf(tmp_path: Path, sleeper) -> None:
    core = tmp_path / "sleep.core"
    summary = dump_to_file(sleeper.pid, core)
    out = subprocess.run(["readelf", "-h", "-l", str(core)], capture_output=True, text=True, check=True)
    assert re.search(r"Type:\s+CORE \(Core file\)", out.stdout)
    assert "Warning" not in out.stderr and "Error" not in out.stderr
    assert out.stdout.count("LOAD") == summary.regions
    notes = subprocess.run(["readelf", "-n", str(core)], capture_output=True, text=True, check=True).stdout
    for note in ("NT_PRSTATUS", "NT_PRPSINFO", "NT_AUXV", "NT_FILE"):
        assert note in notes
    full = subprocess.run(["readelf", "-a", str(core)], capture_output=True, text=True, check=False)
    assert full.returncode == 0 and "Error" not in full.stderr
    assert sleeper.poll() is None, "the target must keep running"
    with open(f"/proc/{sleeper.pid}/stat") as f:
        assert f.read().rpartition(")")[2].split()[0] in ("S", "R")
    assert summary.memory_bytes > 0 and summary.unreadable_bytes == 0


@needs_root
def test_core_holds_the_process_memory(tmp_path: Path) -> None:
    marker = f"VIGIL-MARKER-{uuid.uuid4().hex}"
    code = f"import time; x = {marker!r} * 3; print('ready', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        core = tmp_path / "py.core.gz"
        with gzip.open(core, "wb", compresslevel=1) as out:
            write_core(proc.pid, out)  # sequential writer: works into a compressing stream
        data = gzip.decompress(core.read_bytes())
        assert (marker * 3).encode() in data
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@needs_root
def test_vvar_is_skipped(tmp_path: Path, sleeper) -> None:
    maps = read_maps(sleeper.pid)
    vvar = [m for m in maps if m.path.startswith("[vvar")]
    assert vvar, "the kernel maps [vvar] into every process"
    core = tmp_path / "sleep.core"
    dump_to_file(sleeper.pid, core)
    out = subprocess.run(
        ["readelf", "-l", "-W", str(core)], capture_output=True, text=True, check=True
    ).stdout
    loads = {int(line.split()[2], 16) for line in out.splitlines() if line.strip().startswith("LOAD")}
    assert loads and all(m.start not in loads for m in vvar)
    assert any(m.path == "[stack]" and m.start in loads for m in maps)


def test_missing_process_is_target_gone(tmp_path: Path) -> None:
    with pytest.raises(TargetGone):
        dump_to_file(2**22 + 999, tmp_path / "x.core")
