"""docs/default-rules.md is generated from the rule files and must be up to date."""

from __future__ import annotations

from pathlib import Path

from vigil.rules.catalog import load_catalog
from vigil.rules.docs import DOC_PATH, render_default_rules_markdown


def test_default_rules_page_is_up_to_date() -> None:
    page = (Path(__file__).parents[2] / DOC_PATH).read_text()
    assert page == render_default_rules_markdown(), "run: python -m vigil.rules.docs --write"


def test_page_has_a_row_per_rule_with_attack_links() -> None:
    page = render_default_rules_markdown({"ReverseShellDevTcp": ["reverse-shell"]})
    for rule in load_catalog():
        assert f"| `{rule.name}` | {rule.criticality} |" in page
    assert "[T1059.004](https://attack.mitre.org/techniques/T1059/004/)" in page
    row = next(line for line in page.splitlines() if line.startswith("| `ReverseShellDevTcp`"))
    assert row.endswith("| `reverse-shell` |")
    row = next(line for line in page.splitlines() if line.startswith("| `NetcatShellExec`"))
    assert row.endswith("| - |")
