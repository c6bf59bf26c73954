"""The console's palette meets WCAG 2.1 AA contrast (4.5:1 for text) on the colours it is used on."""

from __future__ import annotations

import re
from importlib import resources

import pytest

CSS = resources.files("vigil.manager.console").joinpath("static", "style.css").read_text()
VARS = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", CSS))


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_contrast_formula_matches_known_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize(
    ("foreground", "background"),
    [
        ("fg", "bg"),
        ("fg", "panel"),
        ("muted", "bg"),
        ("muted", "panel"),
        ("accent", "bg"),
        ("accent-fg", "accent"),
        ("danger", "bg"),
        ("ok", "panel"),
        ("warn", "bg"),
        ("bg", "crit-high"),
        ("bg", "crit-med"),
        ("bg", "crit-low"),
    ],
)
def test_palette_pairs_meet_aa(foreground: str, background: str) -> None:
    ratio = contrast(VARS[foreground], VARS[background])
    assert ratio >= 4.5, f"--{foreground} on --{background}: {ratio:.2f}:1"
