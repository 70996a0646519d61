"""Runs every notebook top to bottom on the embedded models, in place (outputs saved, as committed), and times
each: results/notebook_times.json, the CPU minutes of the course map (book/intro.md).

    .venv/bin/python benchmarks/notebook_times.py            # all twelve, about 6 minutes on 2 idle cores
    .venv/bin/python benchmarks/notebook_times.py 03 05      # some, merged into the file

Time it on an idle machine: a second CPU-heavy job slows a notebook by far more than 2x.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import re

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "notebook_times.json"


def run(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - t0
    nbformat.write(nb, path)
    return seconds


def as_minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def update_course_map(seconds: dict, intro: Path = ROOT / "book" / "intro.md") -> None:
    """Writes each notebook's measured time into the CPU column (the 4th) of the landing page's course map."""
    lines = intro.read_text().split("\n")
    for k, line in enumerate(lines):
        m = re.match(r"^\| \[(\d\d) ", line)
        stem = next((s for s in seconds if m and s.startswith(m.group(1) + "_")), None)
        if stem:
            cells = line.split(" | ")
            cells[3] = as_minutes(seconds[stem])
            lines[k] = " | ".join(cells)
    intro.write_text("\n".join(lines))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("CONCEPTLAB_STATIC", "1")
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if argv:
        paths = [p for p in paths if p.name[:2] in argv]
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results.setdefault("seconds", {})
    failed = []
    for p in paths:
        try:
            s = run(p)
        except Exception as e:                     # noqa: BLE001  (report every notebook, then fail)
            failed.append(p.stem)
            print(f"{p.stem}: FAILED ({type(e).__name__}: {str(e).strip().splitlines()[-1][:200]})", flush=True)
            continue
        results["seconds"][p.stem] = round(s, 1)
        print(f"{p.stem}: {s:.1f} s", flush=True)
        results["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"
        results["total_seconds"] = round(sum(results["seconds"].values()), 1)
        OUT.write_text(json.dumps(results, indent=2) + "\n")
        update_course_map(results["seconds"])
    if failed:
        sys.exit(f"failed: {failed}")
    print(f"total {results['total_seconds']:.0f} s; written to {OUT}")


if __name__ == "__main__":
    main()
