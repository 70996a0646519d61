"""Issue 28's bars, measured on a toy-shapes trained on world v2 (shapes.V2), held-out v2 scenes, seeds fixed.

    .venv/bin/python benchmarks/world_v2.py .toy_runs/v2/out        # results/world_v2.json (about 15 minutes)

The folder holds toy-shapes and toy-clip as `python -m conceptlab.toy.train shapes --world-version 2` writes
them. Measured: removal with "" (120 scenes: removed, clean erase, control kept; benchmarks/inversions.py's
protocol with DDIM), context (40 two-object scenes, the first scaled at omega 5 with the default regularization:
the other object kept, background PSNR), monotone presence on the weak scenes over omega 0, 0.5, 1, 2, 3, 5 (40),
benchmarks/toy_quality.py's measures on world v2: prompts found (204 one-object and 204 two-object prompts,
every other one naming a background, guidance 5), the DDIM round trip with the caption beside the VAE's (50),
toy-clip's zero-shot accuracy on one-object scenes (600), the oracle on clean and decoded scenes (300), and
the seconds of one 50-step guided generation; object-word cross-attention inside its mask (50 one-object
scenes, benchmarks/hooks_cost.py) and localization (120 scenes of 2-3 objects, benchmarks/express_bench.py).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import conceptlab
from conceptlab import inversion, scaling
from conceptlab.worlds import oracle, shapes

sys.path.insert(0, str(Path(__file__).parent))
import express_bench  # noqa: E402  (the localization benchmark)
import hooks_cost  # noqa: E402  (object-word cross-attention inside its mask)
import inversions  # noqa: E402  (the removal and context protocols, implemented once)
import toy_quality  # noqa: E402  (the embedded models' quality measures, implemented once)

OUT = Path(__file__).parent / "results"
W = shapes.V2


def weak_monotone(model, n: int = 40, omegas=(0, 0.5, 1, 2, 3, 5)) -> dict:
    weak = [W.weak_scene(i) for i in range(n)]
    prompts = [f"a {s.labels[0]}" for s in weak]
    invs = inversion.invert(model, [s.image for s in weak], prompts, steps=50)
    edited = scaling.sweep(model, invs, prompts, list(omegas), steps=50)
    pres = np.array([[oracle.presence(im, s.labels[0], world=W) for im in ims] for ims, s in zip(edited, weak)])
    mean = pres.mean(0)
    return dict(scenes=n, omegas=list(omegas), mean_presence=mean.round(4).tolist(),
                strictly_increasing=bool(np.all(np.diff(mean) > 0)))


def localization(model) -> dict:
    """Table 3 on 120 held-out v2 scenes (touching objects among them): ours against the best fixed-k baseline."""
    summary = express_bench.localization(model)[0]
    table = summary["table"]

    def best(filtered: bool) -> dict:
        fixed = {k: v["iou"] for k, v in table.items()
                 if k.startswith(("k-means", "FINCH")) and k.endswith(", filtered") == filtered}
        name = max(fixed, key=fixed.get)
        return dict(method=name, iou=fixed[name])
    # the clusters as they are, and through the end-of-text filter as the paper's Table 3 compares them
    return dict(scenes=summary["scenes"], objects=summary["objects"], ours=table["ours"],
                best_fixed_k=best(False), best_fixed_k_filtered=best(True), table=table)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0] if argv else ".toy_runs/v2/out")
    torch.manual_seed(0)
    model = conceptlab.load(str(folder / "toy-shapes"))
    clip = conceptlab.load_clip(str(folder / "toy-clip"))
    inversions.METHODS[:] = ["ddim"]
    results = dict(model=str(folder), training=json.loads((folder / "toy-shapes" / "TRAINING.json").read_text()),
                   threads=torch.get_num_threads())
    t0 = time.time()
    for name, part in (("oracle", lambda: toy_quality.oracle_accuracy(model, world=W)),
                       ("removal", lambda: inversions.removal(model)["ddim"]),
                       ("context", lambda: inversions.context(model, world=W)["ddim"]),
                       ("weak_monotone", lambda: weak_monotone(model)),
                       ("prompts_found", lambda: toy_quality.generation(model, world=W)),
                       ("round_trip", lambda: toy_quality.reconstruction(model, world=W)),
                       ("clip_zero_shot", lambda: toy_quality.clip_zero_shot(clip, world=W, figure=None)),
                       ("attention_in_mask", lambda: hooks_cost.attention_in_mask(model, world=W)),
                       ("localization", lambda: localization(model)),
                       ("speed", lambda: toy_quality.seconds_per_generation(model))):
        results[name] = part()
        print(name, json.dumps(results[name]), f"({time.time() - t0:.0f} s)", flush=True)
        OUT.mkdir(exist_ok=True)
        (OUT / "world_v2.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {OUT / 'world_v2.json'}")


if __name__ == "__main__":
    main()
