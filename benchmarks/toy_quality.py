"""Quality and speed of the embedded models, against the bars of the foundation issue.

    .venv/bin/python benchmarks/toy_quality.py            # about 3-4 minutes on 2 cores

Prints a table and writes benchmarks/results/toy_quality.json and toy_clip_confusion.png.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import conceptlab
from conceptlab import inversion, metrics
from conceptlab.images import to_tensor
from conceptlab.models import EMBEDDED
from conceptlab.worlds import oracle, shapes

OUT = Path(__file__).parent / "results"


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(metrics.psnr(a, b)[0])


def as_tensor(s) -> torch.Tensor:
    return to_tensor(s.image)


def oracle_accuracy(model, n=300, world: shapes.World = shapes.WORLD):
    """Yes/no accuracy over all the world's labels on clean held-out scenes and on their VAE reconstructions."""
    sc = world.scenes("heldout", n)
    decoded = model.decode(model.encode(torch.cat([as_tensor(s) for s in sc])))
    out = {}
    for name, images in (("clean", [s.image for s in sc]), ("decoded", list(decoded))):
        right = [oracle.is_present(im, lab, world=world) == (lab in s.labels)
                 for im, s in zip(images, sc) for lab in world.labels]
        found = [oracle.is_present(im, lab, world=world) for im, s in zip(images, sc) for lab in s.labels]
        out[name] = dict(accuracy=float(np.mean(right)), recall=float(np.mean(found)))
    weak = [world.weak_scene(i) for i in range(200)]
    out["weak_mean_presence"] = {w: float(np.mean([oracle.presence(s.image, s.labels[0], world=world)
                                                   for s in weak if s.weakness == w])) for w in shapes.WEAKNESSES}
    out["weak_found"] = float(np.mean([oracle.is_present(s.image, s.labels[0], world=world) for s in weak]))
    return out


def generation(model, n=204, guidance=5.0, steps=50, batch=51, world: shapes.World = shapes.WORLD):
    """Share of samples in which the oracle finds the named object (one-object prompts) or both objects; every
    other prompt names a background."""
    rng = np.random.default_rng(0)
    labels = world.labels
    bgs = list(shapes.BACKGROUNDS)

    def obj(label):
        c, s = label.split()
        return shapes.ShapeObject(s, c, 0, 0, 1)

    k = len(labels)
    one = [([labels[i % k]], bgs[(i // k) % 3] if i % 2 else None) for i in range(n)]
    two = []
    for i in range(n):
        a, b = rng.choice(k, 2, replace=False)
        two.append(([labels[a], labels[b]], bgs[i % 3] if i % 2 else None))
    out = {}
    for name, items in (("one_object", one), ("two_objects", two)):
        prompts = [shapes.caption_for([obj(l) for l in labs], bg) for labs, bg in items]
        hits = []
        for k in range(0, n, batch):
            images = model.generate(prompts[k:k + batch], steps=steps, guidance=guidance, seed=k)
            hits += [all(oracle.is_present(im, lab, world=world) for lab in labs)
                     for im, (labs, _) in zip(images, items[k:k + batch])]
        out[name] = dict(rate=float(np.mean(hits)), samples=len(hits))
    return out


def reconstruction(model, n=50, steps=50, world: shapes.World = shapes.WORLD):
    """DDIM inversion with the caption, then sampling back with it; PSNR against the input, and the VAE's own."""
    inv_psnr, vae_psnr = [], []
    for s in world.scenes("heldout", n):
        x = as_tensor(s)
        inv = inversion.invert(model, s.image, s.caption, steps=steps)
        inv_psnr.append(psnr(inversion.reconstruct(model, inv), x))
        vae_psnr.append(psnr(model.decode(model.encode(x)), x))
    return dict(inversion_psnr=float(np.mean(inv_psnr)), vae_psnr=float(np.mean(vae_psnr)), scenes=n, steps=steps)


def clip_zero_shot(clip, n=600, world: shapes.World = shapes.WORLD, figure: Path | None = OUT / "toy_clip_confusion.png"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    labels = list(world.labels)
    sc = world.scenes("heldout", n, start=10_000, n_objects=1)
    cands = [f"a {lab}" for lab in labels]
    pred = []
    for k in range(0, n, 200):
        pred += clip.zero_shot([s.pil() for s in sc[k:k + 200]], cands).argmax(-1).tolist()
    truth = [labels.index(s.labels[0]) for s in sc]
    cm = np.zeros((len(labels), len(labels)), int)
    for t, p in zip(truth, pred):
        cm[t, p] += 1
    if figure is not None:
        fig, ax = plt.subplots(figsize=(7, 6))
        sns.heatmap(cm, annot=True, fmt="d", cmap="Blues", xticklabels=labels, yticklabels=labels, cbar=False, ax=ax)
        ax.set_xlabel("toy-clip says"); ax.set_ylabel("the scene has")
        ax.set_title(f"toy-clip zero-shot on {n} held-out one-object scenes: {np.trace(cm) / n:.1%}")
        fig.tight_layout(); fig.savefig(figure, dpi=100); plt.close(fig)
    return dict(accuracy=float(np.trace(cm) / n), scenes=n)


def training_seconds(training: dict) -> float:
    """Wall time of the shipped weights' whole recipe: the VAE, every UNet run in their history, toy-clip."""
    shapes_ = training["toy-shapes"]
    unet = sum(h["seconds"] for h in shapes_["unet_history"]) if "unet_history" in shapes_ else shapes_["seconds"]
    return shapes_.get("vae_seconds", 0) + unet + training["toy-clip"]["seconds"]


def seconds_per_generation(model, repeats=7):
    model.generate("a red circle and a blue square on grass", steps=50, guidance=5.0, seed=0)   # warm-up
    times = []
    for k in range(repeats):
        t = time.perf_counter()
        model.generate("a red circle and a blue square on grass", steps=50, guidance=5.0, seed=k)
        times.append(time.perf_counter() - t)
    return dict(median_s=statistics.median(times), min_s=min(times), threads=torch.get_num_threads())


def main():
    OUT.mkdir(exist_ok=True)
    torch.manual_seed(0)
    model, clip = conceptlab.load("toy-shapes"), conceptlab.load_clip("toy-clip")
    res = {}
    for name, fn in (("speed", lambda: seconds_per_generation(model)), ("oracle", lambda: oracle_accuracy(model)),
                     ("generation", lambda: generation(model)), ("reconstruction", lambda: reconstruction(model)),
                     ("toy_clip", lambda: clip_zero_shot(clip))):
        t = time.time()
        res[name] = fn()
        print(f"{name}: {json.dumps(res[name])}  ({time.time() - t:.0f} s)", flush=True)
    res["training"] = {k: json.loads((EMBEDDED / k / "TRAINING.json").read_text()) for k in ("toy-shapes", "toy-clip")}
    (OUT / "toy_quality.json").write_text(json.dumps(res, indent=2))
    g, r = res["generation"], res["reconstruction"]
    rows = [
        ("one-object prompts, named object found (g 5, 50 steps)", f"{g['one_object']['rate']:.1%} of {g['one_object']['samples']}", ">= 90%"),
        ("two-object prompts, both found", f"{g['two_objects']['rate']:.1%} of {g['two_objects']['samples']}", ">= 70%"),
        ("DDIM inversion + reconstruction PSNR (50 scenes)", f"{r['inversion_psnr']:.1f} dB", ">= 30 dB"),
        ("VAE reconstruction PSNR", f"{r['vae_psnr']:.1f} dB", "inversion within 1.5 dB"),
        ("toy-clip zero-shot, 12 classes", f"{res['toy_clip']['accuracy']:.1%}", ">= 90%"),
        ("oracle accuracy clean / decoded", f"{res['oracle']['clean']['accuracy']:.2%} / {res['oracle']['decoded']['accuracy']:.2%}", "-"),
        ("one 50-step guided generation", f"{res['speed']['median_s']:.2f} s", "<= 1 s"),
        ("training from scratch (toy-shapes + toy-clip)",
         f"{training_seconds(res['training']) / 60:.1f} min", "<= 60 min"),
    ]
    print("\n| measure | ours | bar |\n| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return res


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
