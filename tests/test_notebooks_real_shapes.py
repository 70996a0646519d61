"""The CI tier of real checkpoints: every notebook runs to its last cell on random-weight pipelines of the real
architectures (SD 2.1-base at 512 px, SDXL at 1024 px, AudioLDM 2), built in code, saved with save_pretrained
to a temporary folder and loaded by path, with its parameters injected as papermill does (MODEL, CLIP,
DETECTOR, SEGMENTER, LPIPS, CLAP: random twins; lowered STEPS and counts). No code cell is edited. The check cells report and do not assert on
random weights (conceptlab.course.check).

    .venv/bin/python tests/test_notebooks_real_shapes.py 03 sdxl     # one notebook by hand, output kept in /tmp
"""
import os
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"

# Per notebook: the parameters that make it quick on a CPU (steps and counts lowered), beyond MODEL/CLIP/DETECTOR.
PARAMS = {
    "00": dict(STEPS=2, INVERT_STEPS=2, PROMPTS=1, SCENES=1),
    "01": dict(STEPS=2, CHECK_SCENES=1, CHECK_STEPS=2),
    "02": dict(STEPS=2, SCENES=1),
    "03": dict(STEPS=2, SCENES=1),
    "04": dict(STEPS=2, INPUTS=1),
    "05": dict(STEPS=2, WEAK=1),
    "06": dict(STEPS=2, WEAK=2, REFERENCE=2),
    "07": dict(SCENES=1, EXPLORE=[4]),
    "08": dict(SCENES=1, KS=[2, 3]),
    "09": dict(STEPS=3, GEN=1, GEN_STEPS=2),
    "10": dict(STEPS=3, OMEGAS=[0.0, 5.0], SAMPLE_STEPS=2),
    "11": dict(STEPS=2, OMEGAS=[1.0, 5.0]),
}
IMAGE_SHAPES = ("sd21", "sdxl")
JUDGES = (("CLIP", "clip"), ("DETECTOR", "owlv2"), ("SEGMENTER", "sam"), ("LPIPS", "lpips"), ("CLAP", "clap"))


def shapes_for(number: str) -> tuple[str, ...]:
    return ("audioldm2",) if number == "11" else IMAGE_SHAPES


def notebook(number: str) -> Path:
    return next(NOTEBOOKS.glob(f"{number}_*.ipynb"))


def run(number: str, shape: str, folders: dict, out_dir: Path):
    """Execute one notebook with papermill on one random-weight shape; raises on the first failing cell."""
    import papermill

    declared = papermill.inspect_notebook(str(notebook(number)))
    params = {**PARAMS[number], "MODEL": folders[shape]}
    params.update({k: folders[f] for k, f in JUDGES if k in declared})
    unknown = set(params) - set(declared)
    if unknown:
        raise KeyError(f"notebook {number} has no parameters {sorted(unknown)} (it declares {sorted(declared)})")
    os.environ.setdefault("CONCEPTLAB_STATIC", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    out = Path(out_dir) / f"{number}-{shape}.ipynb"
    papermill.execute_notebook(str(notebook(number)), str(out), parameters=params, kernel_name="python3",
                               cwd=str(NOTEBOOKS), progress_bar=False, log_output=False)
    return out


@pytest.fixture(scope="session")
def folders(tmp_path_factory):
    from conceptlab.toy import tiny

    return tiny.save_real_shapes(tmp_path_factory.mktemp("real-shapes"))


@pytest.mark.parametrize("number, shape", [(n, s) for n in PARAMS for s in shapes_for(n)])
def test_notebook_runs_to_its_last_cell_on_a_real_shape(number, shape, folders, tmp_path):
    import nbformat

    out = run(number, shape, folders, tmp_path)
    nb = nbformat.read(out, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    at = next(i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    assert "injected-parameters" in code[at + 1].metadata.get("tags", [])     # papermill put them after the parameters
    assert code[-1].get("execution_count") is not None                       # the last exercise's solution ran
    exercises = next(i for i, c in enumerate(nb.cells)
                     if c.cell_type == "markdown" and c.source.startswith("## Exercises"))
    check = [c for c in nb.cells[:exercises] if c.cell_type == "code"][-1]     # the lesson's check cell
    text = "".join(o.get("text", "") for o in check.outputs if o.get("output_type") == "stream")
    assert "checks done on a random model" in text, text


if __name__ == "__main__":
    from conceptlab.toy import tiny

    found = tiny.save_real_shapes(Path("/tmp/real-shapes"))
    for number in sys.argv[1].split(","):
        for shape in (sys.argv[2].split(",") if len(sys.argv) > 2 else shapes_for(number)):
            import time
            t0 = time.time()
            try:
                print(number, shape, "->", run(number, shape, found, Path("/tmp/nbrun")), f"{time.time() - t0:.0f} s")
            except Exception as e:               # papermill's PapermillExecutionError names the cell
                print(number, shape, "FAILED", f"{time.time() - t0:.0f} s", str(e)[-3000:])
