"""Every default rule, through the real engine: it fires on its case events and stays silent on
their benign look-alikes, with the whole default set loaded (as the agent loads it)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from vigil.engine import Engine
from vigil.rules import default_rules_path

CASES = Path(__file__).parent / "cases"
CASE_NAMES = sorted(p.stem for p in CASES.glob("*.json"))


@pytest.fixture(scope="module")
def engine() -> Engine:
    eng = Engine()
    eng.load_path(default_rules_path())
    return eng


def test_every_rule_loads_enabled_with_attack_and_criticality(engine: Engine) -> None:
    names = [r.name for r in engine.rules]
    assert len(names) >= 40
    assert sorted(names) == CASE_NAMES  # a case file for every rule, a rule for every case file
    for rule in engine.rules:
        assert rule.disabled is None, rule.name
        assert not rule.filter, rule.name
        assert 1 <= rule.criticality <= 10, rule.name
        assert rule.attack and all(a.id.startswith("T") and a.tactic for a in rule.attack), rule.name


@pytest.mark.parametrize("name", CASE_NAMES)
def test_rule_fires_on_its_case_and_not_on_the_lookalikes(engine: Engine, name: str) -> None:
    case = json.loads((CASES / f"{name}.json").read_text())
    for i, event in enumerate(case["fire"]):
        result = engine.match(copy.deepcopy(event))
        assert name in result.signature, f"fire[{i}] did not fire {name}: {event['Event']['EventData']}"
        assert result.criticality > 0 and result.attack
    for i, event in enumerate(case["benign"]):
        result = engine.match(copy.deepcopy(event))
        assert name not in result.signature, f"benign[{i}] fired {name}: {event['Event']['EventData']}"


def test_canary_access_is_critical_with_attack(engine: Engine) -> None:
    event = {
        "Event": {
            "System": {"Channel": "Vigil/Operational", "EventID": 100, "Computer": "web-01"},
            "EventData": {
                "Image": "/usr/bin/cat",
                "TargetFilename": "/srv/decoy/passwords.xlsx",
                "User": "bob",
            },
        }
    }
    result = engine.match(event)
    assert result.signature == ["CanaryFileAccessed"]
    assert result.criticality == 10
    assert [a.id for a in result.attack] == ["T1005", "T1083"]
    assert result.to_whids() is not None


def test_ordinary_activity_stays_quiet(engine: Engine) -> None:
    """Everyday commands an admin runs must not alert at all."""
    everyday = [
        ("/usr/bin/ls", "ls -la /home/alice"),
        ("/usr/bin/git", "git pull --rebase"),
        ("/usr/bin/apt-get", "apt-get install -y nginx"),
        ("/usr/bin/systemctl", "systemctl restart nginx"),
        ("/usr/bin/python3.11", "python3 manage.py migrate"),
        ("/usr/bin/ssh", "ssh -i /home/alice/.ssh/id_ed25519 deploy@198.51.100.4"),
        ("/usr/bin/curl", "curl -fsSL -o /home/alice/app.tgz https://example.org/app.tgz"),
        ("/usr/bin/docker", "docker run -d -p 8080:80 -v /srv/site:/usr/share/nginx/html nginx"),
        ("/usr/bin/tar", "tar czf /backup/etc.tgz /etc/nginx"),
        ("/usr/bin/find", "find /var/log -name *.gz -mtime +30 -delete"),
    ]
    ancestors = "/usr/lib/systemd/systemd|/usr/sbin/sshd|/usr/bin/bash"
    for image, command_line in everyday:
        data = {"Image": image, "CommandLine": command_line, "ParentImage": "/usr/bin/bash", "User": "alice"}
        data["Ancestors"] = ancestors
        system = {"Channel": "Linux-Sysmon/Operational", "EventID": 1, "Computer": "web-01"}
        event = {"Event": {"System": system, "EventData": data}}
        assert engine.match(event).signature == [], command_line
