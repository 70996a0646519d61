"""How far a toy-shapes training on world v2 has come, read from its checkpoint while it runs: the EMA UNet and
text encoder of `<workdir>/unet.ckpt` with the workdir's VAE, one 25-step generation at guidance 5 per object
kind ("a red circle", ...; seeds 0..), and the share in which the oracle finds the named object.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/world_v2_peek.py .toy_runs/v2c [--seeds 1] [--why]  # 30 s a seed
    .venv/bin/python benchmarks/world_v2_peek.py conceptlab/toy/weights/toy-shapes --why    # an exported model

Run it beside a training with one thread (it slows the training a little). It prints; with --record it also keeps
the reading in benchmarks/results/world_v2_unet_pilot.json under "<workdir's name> @ <step>" (the pilots' table).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL

import conceptlab
from conceptlab.toy import train, vocab
from conceptlab.worlds import oracle, shapes

RESULTS = Path(__file__).parent / "results" / "world_v2_unet_pilot.json"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workdir", type=Path, help="a training's workdir (its unet.ckpt), or an exported toy-shapes folder")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--why", action="store_true",
                   help="also count why a generation failed (by the oracle's best blob), and the shapes drawn")
    p.add_argument("--record", action="store_true", help=f"keep the reading in {RESULTS}")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model, step = load(args.workdir, Path(tmp))
        world = shapes.world_of(model.training)
        labels = list(world.labels)
        hits, why, drawn = [], [], np.zeros((len(world.shapes), len(world.shapes)), int)
        for seed in range(args.seeds):
            images = model.generate([f"a {lab}" for lab in labels], steps=25, guidance=5.0, seed=seed)
            for im, lab in zip(images, labels):
                score, blob = oracle.best_blob(im, lab, world)          # once: presence, cause and drawn shape
                hits.append(score >= oracle.THRESHOLD)
                why.append(failure(im, lab, world, score, blob))
                if blob is not None:
                    drawn[world.shapes.index(lab.split()[1]), world.shapes.index(drawn_shape(blob))] += 1
    print(f"{step}: the named object found in {np.mean(hits):.0%} of {len(hits)} generations "
          f"({len(labels)} kinds x {args.seeds} seeds, {torch.get_num_threads()} threads)")
    causes = [w for w in why if w]
    failed = {c: causes.count(c) for c in sorted(set(causes))}
    if args.why:
        print("why the others failed:", failed)
        print("shape named (rows) -> shape of its best blob of the named colour (columns):", world.shapes)
        print(drawn)
    if args.record:
        out = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        out[f"{args.workdir.name} @ {step}"] = dict(
            command="benchmarks/world_v2_peek.py " + " ".join(sys.argv[1:]), found=round(float(np.mean(hits)), 4),
            n=len(hits), kinds=len(labels), seeds=args.seeds, failed=failed,
            shapes=list(world.shapes), drawn=drawn.tolist())
        RESULTS.write_text(json.dumps(dict(sorted(out.items())), indent=1) + "\n")
        print("kept in", RESULTS)


def load(path: Path, tmp: Path):
    """(model, what it is): an exported folder as it is; a workdir's EMA UNet and text encoder with its VAE,
    exported to tmp as a toy-shapes of the world its world.json names (v2 where it has none: the v2 runs)."""
    if (path / "model_index.json").exists():
        return conceptlab.load(str(path)), str(path)
    if (ema := train.load_ema_shapes(path / "unet.ckpt")) is None:
        raise SystemExit(f"{path} has no unet.ckpt yet (one is written every 250 steps)")
    unet, text, step = ema
    vae = AutoencoderKL.from_pretrained(path / "vae")
    train.export_pipeline("toy-shapes", vae, unet, text, vocab.tokenizer(), tmp, {"world_version": world_version(path)})
    return conceptlab.load(str(tmp / "toy-shapes")), f"step {step}"


def world_version(workdir: Path) -> int:
    """The world a workdir's run trains: its world.json (written by world_v2_unet_pilot.py), else v2."""
    f = workdir / "world.json"
    return json.loads(f.read_text())["world_version"] if f.exists() else shapes.V2.version


def drawn_shape(blob: dict) -> str:
    """The shape a blob (oracle.best_blob's) is drawn as: the template it overlaps most."""
    return max(blob["ious"], key=blob["ious"].get)


def failure(image, label: str, world, score: float, blob: dict | None) -> str | None:
    """None when the oracle finds `label`; else why not: no blob of its colour, its best blob shaped as another
    shape, or of the right shape but too small, too long or ragged; "+ k more" when k other blobs share its colour."""
    if score >= oracle.THRESHOLD:                    # (score, blob): oracle.best_blob(image, label, world)
        return None
    if blob is None:
        return "no blob of the colour"
    colour, shape = label.split()
    seen = drawn_shape(blob)
    cause = f"shaped as a {seen}" if seen != shape else "right shape, too small, long or ragged"
    more = len(oracle.blobs(image, colour, world)) - 1
    return cause + (f" (+ {more} more of the colour)" if more else "")


if __name__ == "__main__":
    main()
