"""`vigil manager` sub-commands, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.manager.tls import certificate_fingerprint


def vigil(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigil", "manager", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def test_init_creates_everything_and_prints_the_key_once(tmp_path: Path) -> None:
    data = tmp_path / "m"
    out = vigil("init", "--data", str(data)).stdout
    cert = data / "tls" / "cert.pem"
    assert cert.is_file() and (data / "tls" / "key.pem").stat().st_mode & 0o077 == 0
    assert (data / "manager.db").is_file() and (data / "manager.toml").is_file()
    fingerprint = certificate_fingerprint(cert.read_bytes())
    assert f"fingerprint (sha256 of the DER certificate): {fingerprint}" in out
    key = out.split("admin key (shown once): ")[1].split()[0]
    assert len(key) == 64
    assert key not in (data / "manager.db").read_bytes().decode("latin-1")
    assert vigil("fingerprint", str(cert)).stdout.strip() == fingerprint
    again = vigil("init", "--data", str(data), check=False)
    assert again.returncode == 1 and "already initialized" in again.stderr


def test_user_and_endpoint_add(tmp_path: Path) -> None:
    data = tmp_path / "m"
    vigil("init", "--data", str(data), "--no-tls")
    assert not (data / "tls").exists()
    user = json.loads(vigil("user", "add", "carol", "--data", str(data)).stdout)
    assert user["identifier"] == "carol" and len(user["key"]) == 64
    dup = vigil("user", "add", "carol", "--data", str(data), check=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    endpoint = json.loads(vigil("endpoint", "add", "--data", str(data)).stdout)
    assert set(endpoint) == {"uuid", "key"}


def test_commands_on_an_uninitialized_dir_fail_clearly(tmp_path: Path) -> None:
    result = vigil("run", "--data", str(tmp_path / "nothing"), check=False)
    assert result.returncode == 1 and "not initialized" in result.stderr


def test_bad_config_file_is_reported(tmp_path: Path) -> None:
    data = tmp_path / "m"
    vigil("init", "--data", str(data), "--no-tls")
    (data / "manager.toml").write_text("admin_port = 'high'\n")
    result = vigil("run", "--data", str(data), check=False)
    assert result.returncode == 1 and "admin_port must be int" in result.stderr
    (data / "manager.toml").write_text("colour = 'blue'\n")
    result = vigil("run", "--data", str(data), check=False)
    assert "unknown setting 'colour'" in result.stderr


def test_openapi_prints_both_documents() -> None:
    admin = json.loads(vigil("openapi").stdout)
    endpoint = json.loads(vigil("openapi", "--api", "endpoint").stdout)
    assert "/endpoints/{uuid}/report/archive" in admin["paths"] and "/upload/dumps" in endpoint["paths"]


@pytest.mark.parametrize("garbage", [b"", b"not a certificate"])
def test_fingerprint_of_garbage_fails(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "c.pem"
    path.write_bytes(garbage)
    result = vigil("fingerprint", str(path), check=False)
    assert result.returncode == 1 and str(path) in result.stderr


SIGMA_RULE = """title: Cli Sigma Rule
id: 2b4c6d8e-0a1b-4c3d-8e5f-6a7b8c9d0e1f
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        Image|endswith: '/nc'
    condition: selection
level: high
"""
GENE_RULE = (
    '{"Name": "CliGeneRule", "Meta": {"Events": {"Linux-Sysmon/Operational": [1]}, "Criticality": 6,'
    ' "Schema": "2.0.0"}, "Matches": ["$m: Image = \'/usr/bin/socat\'"], "Condition": "$m"}\n'
)


def test_rules_import_stores_gene_and_sigma_of_one_directory_or_nothing(tmp_path: Path) -> None:
    data = tmp_path / "m"
    vigil("init", "--data", str(data), "--no-tls")
    rules = tmp_path / "rules"
    (rules / "sub").mkdir(parents=True)
    (rules / "local.gen").write_text(GENE_RULE)
    (rules / "sub" / "nc.yml").write_text(SIGMA_RULE)
    (rules / "README.md").write_text("not a rule")
    # A broken Sigma file next to them: every error printed, nothing stored.
    (rules / "broken.yaml").write_text(
        SIGMA_RULE.replace("2b4c6d8e-0a1b-4c3d-8e5f-6a7b8c9d0e1f", "2b4c6d8e-0a1b-4c3d-8e5f-6a7b8c9d0e20")
        .replace("Cli Sigma Rule", "Cli Broken")
        .replace("condition: selection", "condition: selection or missing")
    )
    refused = vigil("rules", "import", "--data", str(data), str(rules), check=False)
    assert refused.returncode == 1, refused
    assert f"{rules / 'broken.yaml'}:1: rule 'Cli Broken': [parse]" in refused.stdout
    assert "'missing' not defined" in refused.stdout and "nothing was stored" in refused.stderr
    assert vigil("rules", "list", "--data", str(data)).stdout == ""
    (rules / "broken.yaml").unlink()
    stored = vigil("rules", "import", "--data", str(data), str(rules))
    assert "stored 1 Gene rule(s) and 1 Sigma rule(s)" in stored.stdout
    listed = vigil("rules", "list", "--data", str(data)).stdout.splitlines()
    assert listed == [
        "gene\tCliGeneRule\t6",
        "sigma-rule\tCli Sigma Rule\t8\t2b4c6d8e-0a1b-4c3d-8e5f-6a7b8c9d0e1f",
    ]
    again = vigil("rules", "import", "--data", str(data), str(rules), check=False)
    assert again.returncode == 1 and "already stored" in again.stdout
    assert vigil("rules", "import", "--data", str(data), "--update", str(rules)).returncode == 0
    missing = vigil("rules", "import", "--data", str(data), str(tmp_path / "nope"), check=False)
    assert missing.returncode == 1 and "no such file or directory" in missing.stderr


def test_vigil_rules_check_loads_gene_and_sigma_from_one_directory(tmp_path: Path) -> None:
    (tmp_path / "database.gen").write_text(GENE_RULE)
    (tmp_path / "manager-sigma.yml").write_text(f"---\n{SIGMA_RULE}")
    check = [sys.executable, "-m", "vigil", "rules", "check", str(tmp_path)]
    ok = subprocess.run(check, capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0 and "2 rules loaded" in ok.stdout, ok
    (tmp_path / "bad.yml").write_text(
        SIGMA_RULE.replace("|endswith", "|endswiht").replace("Cli Sigma", "Bad")
    )
    bad = subprocess.run(check, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1 and "Unknown modifier 'endswiht'" in bad.stdout, bad
