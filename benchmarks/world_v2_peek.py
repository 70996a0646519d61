"""How far a toy-shapes training on world v2 has come, read from its checkpoint while it runs: the EMA UNet and
text encoder of `<workdir>/unet.ckpt` with the workdir's VAE, one 25-step generation at guidance 5 per object
kind ("a red circle", ...; seeds 0..), and the share in which the oracle finds the named object.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/world_v2_peek.py .toy_runs/v2c [--seeds 1]   # about 30 s a seed

Run it beside a training with one thread (it slows the training a little); prints, and writes nothing.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL

import conceptlab
from conceptlab.toy import nets, train, vocab
from conceptlab.worlds import oracle, shapes


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workdir", type=Path)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--why", action="store_true", help="also count why a generation failed (by the oracle's best blob)")
    args = p.parse_args()
    world = shapes.V2
    ck = train.load_ckpt(args.workdir / "unet.ckpt")
    if ck is None:
        raise SystemExit(f"{args.workdir} has no unet.ckpt yet (one is written every 250 steps)")
    unet, text = nets.unet(), nets.text_encoder(vocab.VOCAB_DIR)
    unet.load_state_dict(ck["ema_unet"]); text.load_state_dict(ck["ema_text"])
    vae = AutoencoderKL.from_pretrained(args.workdir / "vae")
    with tempfile.TemporaryDirectory() as tmp:
        train.export_pipeline("toy-shapes", vae, unet.eval(), text.eval(), vocab.tokenizer(), Path(tmp),
                              {"world_version": world.version})
        model = conceptlab.load(str(Path(tmp) / "toy-shapes"))
        labels = list(world.labels)
        hits, why = [], []
        for seed in range(args.seeds):
            images = model.generate([f"a {lab}" for lab in labels], steps=25, guidance=5.0, seed=seed)
            hits += [oracle.is_present(im, lab, world=world) for im, lab in zip(images, labels)]
            why += [failure(im, lab, world) for im, lab in zip(images, labels)]
    print(f"step {ck['step']}: the named object found in {np.mean(hits):.0%} of {len(hits)} generations "
          f"({len(labels)} kinds x {args.seeds} seeds, {torch.get_num_threads()} threads)")
    if args.why:
        causes = [w for w in why if w]
        print("why the others failed:", {c: causes.count(c) for c in sorted(set(causes))})


def failure(image, label: str, world) -> str | None:
    """None when the oracle finds `label`; else why not: no blob of its colour, its best blob shaped as another
    shape, or of the right shape but too small, too long or ragged; "+ k more" when k other blobs share its colour."""
    score, blob = oracle.best_blob(image, label, world)
    if score >= oracle.THRESHOLD:
        return None
    if blob is None:
        return "no blob of the colour"
    colour, shape = label.split()
    seen = max(blob["ious"], key=blob["ious"].get)
    cause = f"shaped as a {seen}" if seen != shape else "right shape, too small, long or ragged"
    more = len(oracle.blobs(image, colour, world)) - 1
    return cause + (f" (+ {more} more of the colour)" if more else "")


if __name__ == "__main__":
    main()
