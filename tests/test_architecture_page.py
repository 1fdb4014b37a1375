"""docs/architecture.md draws the layers tests/test_layers.py enforces, in the same order."""

from __future__ import annotations

import re
from pathlib import Path

from test_layers import LAYERS

PAGE = Path(__file__).parent.parent / "docs" / "architecture.md"


def layer_diagram() -> list[str]:
    """The lines of the first text block under "## The layers", top (highest layer) first."""
    section = PAGE.read_text(encoding="utf-8").split("## The layers", 1)[1]
    return section.split("```text\n", 1)[1].split("```", 1)[0].splitlines()


def test_the_diagram_shows_every_layer_top_to_bottom() -> None:
    lines = layer_diagram()
    folders = [line.split()[0] for line in lines if not line.startswith((" ", "vocabulary"))]
    assert folders == [name for layer in reversed(LAYERS[1:]) for name in sorted(layer)]
    vocabulary = " ".join(line for line in lines if line.startswith((" ", "vocabulary")))
    assert LAYERS[0] <= set(re.findall(r"[a-z_]+", vocabulary))
