"""`vigil simulate` on the command line, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

from vigil.simulate import SCENARIOS


def vigil(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigil", "simulate", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_list_names_every_scenario_with_its_rules() -> None:
    done = vigil("--list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for sc in SCENARIOS.values():
        header = f"{sc.name} (root)" if sc.needs_root else sc.name
        assert header in lines
    assert "rules: ReverseShellDevTcp, ScriptInterpreterSocketShell," in done.stdout


def test_list_json_is_one_object_per_scenario() -> None:
    done = vigil("--list", "--json", "cloud-metadata", "impact")
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["name"] for r in rows] == ["cloud-metadata", "impact"]
    assert rows[0]["needs_root"] is True and rows[1]["rules"] == ["MassFileEncryption"]


def test_running_a_scenario_reports_what_it_should_trigger() -> None:
    done = vigil("discovery")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ran      discovery\n")
    assert "should trigger: ReconUserIdentity, ReconSystemInfo" in done.stdout
    assert "1 of 1 scenario(s) ran" in done.stdout


def test_json_run_output() -> None:
    done = vigil("--json", "impact")
    assert json.loads(done.stdout) == {
        "name": "impact",
        "status": "ran",
        "message": "",
        "rules": ["MassFileEncryption"],
        "skipped_rules": {},
    }


def test_unknown_name_is_an_error_naming_it() -> None:
    done = vigil("discovery", "no-such-scenario")
    assert done.returncode == 2
    assert "unknown simulation(s): no-such-scenario" in done.stderr
    assert done.stdout == ""  # nothing ran
