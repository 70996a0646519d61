"""The inversions side by side on toy-shapes: DDIM (conceptlab's default), ReNoise (the paper's), edit-friendly
DDPM (Huberman-Spiegelglas et al. 2024) and ReNoise as the authors' demo runs it ("renoise-authors": noise
regularization, their averaging, a sampled z_0; scaling.AUTHORS), on held-out scenes, seeds fixed.

    .venv/bin/python benchmarks/inversions.py                    # writes results/inversions.json
    .venv/bin/python benchmarks/inversions.py renoise-authors    # one method again, merged into the file

1. Round trip: invert each scene with its first object's phrase and sample back with it; PSNR against the
   input and against the VAE alone (the ceiling: an exact inversion reaches the VAE's PSNR).
2. Removal (scaling_bench.py's protocol): omega 0 and the omega 1 control from one inversion (gamma 0, no
   regularization); the oracle's removal, control-keep and clean-erase rates.
3. Context: two-object scenes, the first object scaled up at omega 5 with the default regularization
   (gamma 3, t_exit 15); the unnamed object kept (oracle) and the PSNR outside both objects.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import conceptlab
from conceptlab import inversion, metrics, scaling
from conceptlab.images import to_tensor
from conceptlab.worlds import oracle, shapes

sys.path.insert(0, str(Path(__file__).parent))
from scaling_bench import psnr_outside  # noqa: E402  (one definition of the background PSNR)
import reproduced  # noqa: E402  (the paper tables, run by conceptlab.reproduce)

OUT = Path(__file__).parent / "results"
STEPS = 50
METHODS = ["ddim", "renoise", "ddpm", "renoise-authors"]


def phrase(label: str) -> str:
    return f"a {label}"


def round_trip(model, n: int = 50) -> dict:
    scenes = shapes.scenes("heldout", n)
    x = torch.cat([to_tensor(s.image) for s in scenes])
    out = {"scenes": n, "vae_psnr": float(metrics.psnr(model.decode(model.encode(x)), x).mean())}
    for method in METHODS:
        invs = inversion.invert(model, [s.image for s in scenes], [phrase(s.labels[0]) for s in scenes],
                                steps=STEPS, method=method)
        out[method] = float(metrics.psnr(inversion.reconstruct(model, invs), x).mean())
    return out


def removal(model, n: int = 120) -> dict:
    """The `removal` experiment of conceptlab.reproduce with each inversion method (implemented there once), on
    the model's own world (a toy model's TRAINING.json says which), summarized."""
    out = {"scenes": n}
    for method in METHODS:
        rows = reproduced.rows("removal", model=model.name, n=n, steps=STEPS, inversion=method)
        out[method] = {k: float(np.mean([r[k] for r in rows])) for k in ("removed", "kept", "clean")}
    return out


def context(model, n: int = 40, omega: float = 5.0, world: shapes.World = shapes.WORLD) -> dict:
    scenes = [s for s in world.scenes("heldout", 10 * n) if len(s.labels) == 2][:n]
    prompts = [phrase(s.labels[0]) for s in scenes]
    out = {"scenes": n, "omega": omega}
    for method in METHODS:
        invs = inversion.invert(model, [s.image for s in scenes], prompts, steps=STEPS, method=method)
        edited = scaling.sweep(model, invs, prompts, [omega], steps=STEPS)             # gamma 3, t_exit 15
        out[method] = dict(other_object_kept=float(np.mean([oracle.is_present(e[0], s.labels[1], world=world)
                                                            for e, s in zip(edited, scenes)])),
                           background_psnr=float(np.mean([psnr_outside(e[0], s.image, s.masks)
                                                          for e, s in zip(edited, scenes)])))
    return out


def main():
    torch.manual_seed(0)
    model = conceptlab.load("toy-shapes")
    t0 = time.time()
    results = {"steps": STEPS, "threads": torch.get_num_threads()}
    if len(sys.argv) > 1:                                      # some methods again, the rest kept from the file
        METHODS[:] = sys.argv[1:]
        results = json.loads((OUT / "inversions.json").read_text())
    for name, part in (("round_trip", round_trip), ("removal", removal), ("context", context)):
        results[name] = {**results.get(name, {}), **part(model)}
        print(name, json.dumps(results[name]), f"({time.time() - t0:.0f} s)", flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "inversions.json").write_text(json.dumps(results, indent=2))
    print(f"written to {OUT / 'inversions.json'}")


if __name__ == "__main__":
    main()
