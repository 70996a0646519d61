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


def cells_of(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_ends_with_exercises_with_hidden_solutions(path):
    cells = cells_of(path)
    start = next((i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                  and "".join(c["source"]).startswith("## Exercises")), None)
    assert start is not None, f"{path.name} has no '## Exercises' section"
    tail = cells[start + 1:]
    tasks = [c for c in tail if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("### Exercise")]
    solutions = [c for c in tail if c["cell_type"] == "code"]
    assert len(tasks) >= 2 and len(solutions) == len(tasks)
    assert all("hide-cell" in c["metadata"].get("tags", []) for c in solutions), "solutions hide behind a toggle"
    assert all("course.check(" in "".join(c["source"]) for c in solutions), "each solution checks its answer"
    assert tail[-1]["cell_type"] == "code", "the notebook ends with the last exercise's solution"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_installs_on_colab_from_the_books_repository(path):
    import re

    config = (path.parent.parent / "book" / "_config.yml").read_text()
    url = re.search(r"^repository:\n  url: (\S+)", config, re.M).group(1)
    first = next(c for c in cells_of(path) if c["cell_type"] == "code")
    source = "".join(first["source"])
    assert 'if "google.colab" in sys.modules:' in source and f'REPO = "{url}"' in source
    assert "torch" not in source.split("pip =")[1], "Colab's own torch is kept"


def test_the_course_map_shows_the_measured_cpu_times():
    import importlib.util

    root = Path(__file__).parent.parent
    spec = importlib.util.spec_from_file_location("notebook_times", root / "benchmarks" / "notebook_times.py")
    times = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(times)
    seconds = json.loads((root / "benchmarks" / "results" / "notebook_times.json").read_text())["seconds"]
    intro = (root / "book" / "intro.md").read_text()
    for path in NOTEBOOKS:
        row = next(l for l in intro.split("\n") if l.startswith(f"| [{path.name[:2]} "))
        assert row.split(" | ")[3] == times.as_minutes(seconds[path.stem]), row


RESULTS = Path(__file__).parent.parent / "benchmarks" / "results"


def measured_constants(path: Path) -> list[tuple[str, str | None, dict]]:
    """(results file, section or None, MEASURED) for every check cell that states a benchmark's rates: a comment
    naming `benchmarks/results/<file>.json, "<section>")` (or `benchmarks/results/<file>.json)` for the whole
    file) before a `MEASURED = {...}` literal, which may nest as the file does."""
    import ast
    import re

    out = []
    for c in cells_of(path):
        src = "".join(c["source"])
        if "\nMEASURED = " not in src:
            continue
        named = re.search(r'benchmarks/results/(\w+)\.json(?:, "(\w+)")?\)', src)
        assert named, f"{path.name}: a MEASURED cell names no benchmarks/results/<file>.json it copies"
        value = next(node.value for node in ast.walk(ast.parse(src)) if isinstance(node, ast.Assign)
                     and any(isinstance(t, ast.Name) and t.id == "MEASURED" for t in node.targets))
        out.append((named[1], named[2], ast.literal_eval(value)))
    return out


def differences(stated: dict, results: dict, at: str = "") -> list[str]:
    """'key: stated vs file' wherever a (nested) MEASURED number differs from the results file's (to 3 decimals)."""
    out = []
    for key, value in stated.items():
        where = f"{at}{key}"
        if key not in results:
            out.append(f"{where}: not in the file")
        elif isinstance(value, dict):
            out += differences(value, results[key], where + ".")
        elif value != pytest.approx(results[key], abs=5e-4):
            out.append(f"{where}: {value} vs {results[key]:.4f}")
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_rates_a_check_cell_states_are_the_benchmarks(path):
    """A check cell's MEASURED numbers are those its benchmark last wrote (to 3 decimals): they cannot go stale."""
    for name, section, numbers in measured_constants(path):
        results = json.loads((RESULTS / f"{name}.json").read_text())
        results = results[section] if section else results
        assert differences(numbers, results) == [], (
            f"{path.name}: MEASURED differs from benchmarks/results/{name}.json ({differences(numbers, results)}): "
            "copy the benchmark's numbers into the notebook and run it again")


def test_differences_finds_a_stale_number_at_any_depth():
    file = {"generation": {"one": {"rate": 0.9657}}, "clip": {"accuracy": 0.99}}
    assert differences({"generation": {"one": {"rate": 0.966}}}, file) == []
    assert differences({"generation": {"one": {"rate": 0.95}}}, file) == ["generation.one.rate: 0.95 vs 0.9657"]
    assert differences({"clip": {"acc": 0.99}}, file) == ["clip.acc: not in the file"]


# the notebooks whose check cells assert a rate measured on a small sample, and the benchmark that rate is from
STATED = {"00": ("toy_quality", None), "01": ("hooks", "attention_in_mask"), "03": ("scaling", "removal"),
          "07": ("express", "structure"), "09": ("tokens", "table")}


@pytest.mark.parametrize("number", sorted(STATED))
def test_a_sampled_rate_is_checked_against_its_benchmark(number):
    path = next(p for p in NOTEBOOKS if p.name.startswith(number))
    assert [m[:2] for m in measured_constants(path)] == [STATED[number]]
