"""docs/api.md is generated from the code and must be current."""

from __future__ import annotations

from pathlib import Path

from vigil.cli.manager import openapi_document
from vigil.manager.apidoc import render_markdown


def test_api_reference_is_up_to_date() -> None:
    expected = render_markdown(openapi_document("admin"), openapi_document("endpoint"))
    current = Path("docs/api.md").read_text()
    assert current == expected, "docs/api.md is stale: run `vigil manager openapi --markdown > docs/api.md`"


def test_every_route_is_documented() -> None:
    text = Path("docs/api.md").read_text()
    admin = openapi_document("admin")
    endpoint = openapi_document("endpoint")
    for schema in (admin, endpoint):
        for path, item in schema["paths"].items():
            for method in item:
                assert f"| {method.upper()} | `{path}` |" in text
    assert sum(len(item) for item in admin["paths"].values()) == 45  # WHIDS 42 + 3 Sigma routes
    assert sum(len(item) for item in endpoint["paths"].values()) == 18  # WHIDS 16 + 2 Sigma routes
