"""Issue 28's bars, measured on a toy-shapes trained on world v2 (shapes.V2), held-out v2 scenes, seeds fixed.

    .venv/bin/python benchmarks/world_v2.py .toy_runs/v2/out        # results/world_v2.json (about 15 minutes)

The folder holds toy-shapes and toy-clip as `python -m conceptlab.toy.train shapes --world-version 2` writes
them. Measured: removal with "" (120 scenes: removed, clean erase, control kept; benchmarks/inversions.py's
protocol with DDIM), context (40 two-object scenes, the first scaled at omega 5 with the default regularization:
the other object kept, background PSNR), monotone presence on the weak scenes over omega 0, 0.5, 1, 2, 3, 5 (40),
prompts found (one object and two objects, guidance 5), the DDIM round trip beside the VAE's (50), toy-clip's
zero-shot accuracy on one-object scenes (300), and the oracle on clean v2 scenes (300).
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
import inversions  # noqa: E402  (the removal and context protocols, implemented once)

OUT = Path(__file__).parent / "results"
W = shapes.V2


def weak_monotone(model, n: int = 40, omegas=(0, 0.5, 1, 2, 3, 5)) -> dict:
    weak = [shapes.weak_scene(i) for i in range(n)]
    prompts = [f"a {s.labels[0]}" for s in weak]
    invs = inversion.invert(model, [s.image for s in weak], prompts, steps=50)
    edited = scaling.sweep(model, invs, prompts, list(omegas), steps=50)
    pres = np.array([[oracle.presence(im, s.labels[0], world=W) for im in ims] for ims, s in zip(edited, weak)])
    mean = pres.mean(0)
    return dict(scenes=n, omegas=list(omegas), mean_presence=mean.round(4).tolist(),
                strictly_increasing=bool(np.all(np.diff(mean) > 0)))


def prompts_found(model, n: int = 60, guidance: float = 5.0) -> dict:
    rng = np.random.default_rng(0)
    labels = W.labels
    one = [[labels[i % len(labels)]] for i in range(n)]
    two = [list(rng.choice(labels, 2, replace=False)) for _ in range(n)]
    out = {}
    for name, items in (("one_object", one), ("two_objects", two)):
        prompts = [" and ".join(f"a {l}" for l in labs) for labs in items]
        hits = []
        for k in range(0, n, 30):
            images = model.generate(prompts[k:k + 30], steps=50, guidance=guidance, seed=k, output="pt")
            hits += [all(oracle.is_present(im, l, world=W) for l in labs) for im, labs in zip(images, items[k:k + 30])]
        out[name] = float(np.mean(hits))
    return out


def round_trip(model, n: int = 50) -> dict:
    scenes = W.scenes("heldout", n)
    x = torch.cat([to_tensor(s.image) for s in scenes])
    invs = inversion.invert(model, [s.image for s in scenes], [f"a {s.labels[0]}" for s in scenes], steps=50)
    return dict(scenes=n, vae=float(metrics.psnr(model.decode(model.encode(x)), x).mean()),
                ddim=float(metrics.psnr(inversion.reconstruct(model, invs), x).mean()))


def clip_zero_shot(clip, n: int = 300) -> float:
    scenes = W.scenes("heldout", n, start=10_000, n_objects=1)
    cands = [f"a {l}" for l in W.labels]
    probs = clip.zero_shot(torch.cat([to_tensor(s.image) for s in scenes]), cands)
    return float(np.mean([cands[int(p.argmax())] == f"a {s.labels[0]}" for p, s in zip(probs, scenes)]))


def oracle_on_clean(n: int = 300) -> dict:
    found, right = [], []
    for s in W.scenes("heldout", n):
        d = oracle.detect(s.image, world=W)
        found += [d[l] >= oracle.THRESHOLD for l in s.labels]
        right += [(d[l] >= oracle.THRESHOLD) == (l in s.labels) for l in W.labels]
    return dict(scenes=n, objects_found=float(np.mean(found)), answers_right=float(np.mean(right)))


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
    for name, part in (("oracle", lambda: oracle_on_clean()),
                       ("removal", lambda: inversions.removal(model)["ddim"]),
                       ("context", lambda: inversions.context(model, world=W)["ddim"]),
                       ("weak_monotone", lambda: weak_monotone(model)),
                       ("prompts_found", lambda: prompts_found(model)),
                       ("round_trip", lambda: round_trip(model)),
                       ("clip_zero_shot", lambda: clip_zero_shot(clip))):
        results[name] = part()
        print(name, json.dumps(results[name]), f"({time.time() - t0:.0f} s)", flush=True)
        OUT.mkdir(exist_ok=True)
        (OUT / "world_v2.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {OUT / 'world_v2.json'}")


if __name__ == "__main__":
    main()
