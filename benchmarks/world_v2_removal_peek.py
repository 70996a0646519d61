"""Removal with "" read from a v2 training's checkpoint (a pilot's or a full run's workdir): its EMA UNet and text
encoder with its VAE, exported to <workdir>/peek/toy-shapes, then conceptlab.reproduce's `removal` (the protocol of
benchmarks/world_v2.py and inversions.py, DDIM, 50 steps) on the first --n held-out v2 scenes.

    .venv/bin/python benchmarks/world_v2_removal_peek.py .toy_runs/unet_pilot/ARM [--n 60] [--context 40] [--record]

Prints removed / clean / control kept, and removed by the scene's object count; with --context N also context
(benchmarks/world_v2.py's: the first object of N two-object scenes scaled at omega 5, the other object kept and
the background's PSNR); with --record it keeps the reading in benchmarks/results/world_v2_unet_pilot.json under
"<workdir's name> @ <step>, removal (n)".
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import inversions  # noqa: E402  (the context protocol of benchmarks/world_v2.py)
import reproduced  # noqa: E402  (the paper tables, run through conceptlab.reproduce)
import world_v2_peek  # noqa: E402  (a workdir's checkpoint as a model)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workdir", type=Path)
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--context", type=int, default=0, help="two-object scenes for the context reading (0: none)")
    p.add_argument("--record", action="store_true")
    args = p.parse_args()
    out = args.workdir / "peek"
    shutil.rmtree(out, ignore_errors=True)
    _, step = world_v2_peek.load(args.workdir, out)
    rows = reproduced.rows("removal", model=str(out / "toy-shapes"), n=args.n, steps=50, inversion="ddim")
    reading = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in ("removed", "clean", "kept")}
    reading["removed by objects"] = {str(k): round(float(np.mean([r["removed"] for r in rows if r["objects"] == k])), 4)
                                     for k in sorted({r["objects"] for r in rows})}
    if args.context:
        import conceptlab
        from conceptlab.worlds import shapes

        inversions.METHODS[:] = ["ddim"]                      # as benchmarks/world_v2.py reads it
        got = inversions.context(conceptlab.load(str(out / "toy-shapes")), n=args.context, world=shapes.V2)["ddim"]
        reading["context"] = dict(scenes=args.context, **{k: round(v, 4) for k, v in got.items()})
    print(f"{args.workdir.name} @ {step}, removal ({args.n}):", json.dumps(reading))
    if args.record:
        res = world_v2_peek.RESULTS
        found = json.loads(res.read_text()) if res.exists() else {}
        found[f"{args.workdir.name} @ {step}, removal ({args.n})"] = dict(
            command="benchmarks/world_v2_removal_peek.py " + " ".join(sys.argv[1:]), **reading)
        res.write_text(json.dumps(dict(sorted(found.items())), indent=1) + "\n")


if __name__ == "__main__":
    main()
