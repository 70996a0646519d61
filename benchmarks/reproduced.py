"""The benchmarks' measurements that are paper tables, run through `python -m conceptlab.reproduce` (where each is
implemented once): rows(experiment, **options) runs the experiment into runs/bench/<experiment>[-<options>]
(resumable: a stopped benchmark goes on where it stopped; a retrained model gets a fresh folder, its weights'
revision is part of the settings) and returns its rows, in item order."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from conceptlab.reproduce import reproduce

RUNS = Path(__file__).resolve().parent.parent / "runs" / "bench"


def folder(experiment: str, **options) -> Path:
    tag = "-".join(f"{k}{v}" for k, v in sorted(options.items()) if v is not None and v not in ("toy-shapes", "toy-sounds"))
    return RUNS / re.sub(r"[^A-Za-z0-9_.\-]", "_", experiment + (f"-{tag}" if tag else ""))


def run(experiment: str, **options) -> Path:
    """Runs (or resumes) the experiment into its folder -> the folder, which holds rows.jsonl and table.csv."""
    out = folder(experiment, **options)
    try:
        reproduce(experiment, out=str(out), **options)
    except SystemExit as refused:                     # rows of other weights or settings: start over
        if "other settings" not in str(refused):
            raise
        shutil.rmtree(out)
        reproduce(experiment, out=str(out), **options)
    return out


def rows(experiment: str, **options) -> list[dict]:
    return [json.loads(line) for line in (run(experiment, **options) / "rows.jsonl").read_text().splitlines()]


def table(experiment: str, **options) -> dict[str, dict]:
    """Run as `rows` does -> the merged table's own lines: {method: {score: value}} (numbers as floats)."""
    import csv

    with (run(experiment, **options) / "table.csv").open() as f:
        return {line["method"]: {k: float(v) for k, v in line.items() if k not in ("source", "method") and v}
                for line in csv.DictReader(f) if line["source"] == "ours"}
