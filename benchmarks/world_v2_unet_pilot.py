"""Why does toy-shapes learn world v2 slowly (shapes form only after about 3000 steps, 57% of prompts found at
6000; v1 reached 96.6% at 7500)? From-scratch UNet + text encoder trainings on v2 variants, one factor changed
each, all with toy.train's recipe (min-SNR-5, grounding 0.1, batch 64, cosine from 1e-3, EMA 0.999) and the
v2 VAE of .toy_runs/v2c, for the same steps; read by benchmarks/world_v2_peek.py at the end.

    .venv/bin/python benchmarks/world_v2_unet_pilot.py ARM [--steps 3750]   # about 45 min an arm; resumable
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/world_v2_peek.py .toy_runs/unet_pilot/ARM --seeds 3

ARM: v2 (the control: shapes.V2 as it is), close0.1 (objects placed against another with chance 0.1, not 0.3),
one-two (scenes of one or two objects, no three), every0.5 (half the captions name every object, not a quarter),
close0.1-every0.5 (both); v1 (the reference: world v1's scenes and caption mix, which the shipped toy-shapes
learnt, through the same recipe and VAE) and v2-v1captions (v2's scenes captioned with v1's mix,
toy.train.training_caption: 70% name every object, no size words); v2-frozentext (v2 as it is, the text encoder
left at its random init and not trained: benchmarks/world_v2_text_collapse.py finds that every from-scratch run
merges "circle" and "square" in its text encoder). --grounding (default 0.1, the recipe's) sets
the grounding loss's weight, --object-weight W (default 0) weighs an object's latent pixels (1 + W) times a
background one's in the denoising loss, --batch (default 64) the batch, --shape-swap N (default 0) adds toy.train's
shape_swap_loss on N scenes a batch (weight 0.1); an arm run with other values gets its own workdir,
ARM-groundingG-objwW-batchB-swapN-twinT-localL-eotE-emptyE (the changed ones only; --tag TAG adds -TAG). A finished arm
run again with more --steps continues from its checkpoint (a warm restart of the cosine schedule).
"""
from __future__ import annotations

import argparse
import json
import dataclasses
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL

from conceptlab.toy import nets, train, vocab
from conceptlab.worlds import shapes

ROOT = Path(".toy_runs/unet_pilot")
VAE = Path(".toy_runs/v2c/vae")
CLOSE = dataclasses.replace(shapes.V2, close=0.1)
# The options that name an arm's workdir when they differ from their defaults: (argument, label in the name).
NAMED = [("grounding", "grounding"), ("object_weight", "objw"), ("batch", "batch"), ("shape_swap", "swap"),
         ("swap_object", "swapof-"),
         ("null_twin", "twin"), ("null_locality", "local"),
         ("eot_grounding", "eot"), ("empty_captions", "empty")]
ARMS = {"v2": shapes.V2, "close0.1": CLOSE, "one-two": shapes.V2, "every0.5": shapes.V2, "close0.1-every0.5": CLOSE,
        "v1": shapes.V1, "v2-v1captions": shapes.V2, "v2-frozentext": shapes.V2}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("arm", choices=list(ARMS))
    p.add_argument("--steps", type=int, default=3750)
    p.add_argument("--grounding", type=float, default=0.1)
    p.add_argument("--object-weight", type=float, default=0.0,
                   help="toy.train's --object-weight: an object's latent pixels weigh (1 + this) in the loss")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--shape-swap", type=int, default=0,
                   help="toy.train's --shape-swap: scenes per batch also denoised with a shape word swapped")
    p.add_argument("--swap-object", choices=["first", "random"], default="first",
                   help="toy.train's --swap-object: whose shape word --shape-swap swaps")
    p.add_argument("--null-twin", type=float, default=0.0,
                   help="toy.train's --null-twin: weight of shape_swap_loss against \"\" on the swapped scenes")
    p.add_argument("--null-locality", type=float, default=0.0,
                   help="toy.train's --null-locality: caption and \"\" agree where nothing named is")
    p.add_argument("--eot-grounding", type=float, default=0.0,
                   help="toy.train's --eot-grounding: the end-of-text token's attention tied to the scene's objects")
    p.add_argument("--empty-captions", type=float, default=0.10,
                   help="toy.train's --empty-captions: share of a scene with objects' captions that are \"\"")
    p.add_argument("--from", dest="start", type=Path, default=None,
                   help="start from this run's unet.ckpt (a fine-tune: its step, optimizer and EMA go on) instead "
                        "of a fresh init; --steps is then the total, the cosine schedule restarted part-way")
    p.add_argument("--tag", default=None,
                   help="appended to the workdir's name: a second run of the same arm (say, a shorter one)")
    args = p.parse_args()
    if args.start is None and not (VAE / "config.json").exists():      # --from: that run's VAE
        raise SystemExit(f"no v2 VAE at {VAE}: train one with `python -m conceptlab.toy.train shapes "
                         f"--world-version 2 --stage vae --workdir .toy_runs/v2c`")
    data = train.world_data(20000, ROOT, ARMS[args.arm])
    if args.arm == "one-two":                           # the same scenes, those with three objects left out
        keep = [i for i, labels in enumerate(data["labels"]) if len(labels) <= 2]
        data = dict(images=data["images"][keep], labels=[data["labels"][i] for i in keep],
                    radii=[data["radii"][i] for i in keep], backgrounds=[data["backgrounds"][i] for i in keep],
                    objects=data["objects"][keep])
    if args.arm == "v2-v1captions":                     # no sizes: shapes_captions then takes v1's caption mix
        data = dict(data, radii=None)
    name = args.arm + "".join(f"-{label}{getattr(args, key):{'' if isinstance(getattr(args, key), str) else 'g'}}" for key, label in NAMED
                              if getattr(args, key) != p.get_default(key)) + \
        ("" if args.start is None else f"-from-{args.start.name}") + ("" if args.tag is None else f"-{args.tag}")
    work = ROOT / name
    work.mkdir(parents=True, exist_ok=True)
    (work / "world.json").write_text(json.dumps({"world_version": ARMS[args.arm].version}))   # for world_v2_peek.py
    if args.start is not None and not (work / "unet.ckpt").exists():
        if not (args.start / "unet.ckpt").exists():
            raise SystemExit(f"--from {args.start}: it has no unet.ckpt to start from")
        shutil.copyfile(args.start / "unet.ckpt", work / "unet.ckpt")          # train_unet resumes from it
        (work / "vae").exists() or (work / "vae").symlink_to((args.start / "vae").resolve())
    (work / "vae").exists() or (work / "vae").symlink_to(VAE.resolve())        # for world_v2_peek.py
    opts = train.options(unet_steps=args.steps, batch=args.batch, grounding=args.grounding,
                         object_weight=args.object_weight, shape_swap=args.shape_swap, swap_object=args.swap_object,
                         null_twin=args.null_twin,
                         null_locality=args.null_locality, eot_grounding=args.eot_grounding,
                         command="benchmarks/world_v2_unet_pilot.py " + " ".join(sys.argv[1:]))
    vae = AutoencoderKL.from_pretrained(work / "vae")            # --from: that run's VAE
    print(f"{args.arm}: {len(data['labels'])} train scenes, {int(np.mean([len(l) for l in data['labels']]) * 100)}"
          f" objects per 100")
    every = 0.5 if "every0.5" in args.arm else 0.25
    torch.manual_seed(opts.seed)                        # the inits, as toy.train's main seeds them (the arms run
    unet, text = nets.unet(), nets.text_encoder(vocab.VOCAB_DIR)   # up to v2-frozentext started unseeded)
    if args.arm == "v2-frozentext":                     # no gradient reaches it: AdamW skips it, its EMA stays put
        text.requires_grad_(False)
    train.train_unet(train.to_float(data["images"]), train.shapes_captions(data, every=every, empty=args.empty_captions), vae, unet,
                     text, vocab.tokenizer(vocab.VOCAB_DIR), opts, work,
                     objects=data["objects"], shape_words=ARMS[args.arm].shapes)
    print(f"done: read it with benchmarks/world_v2_peek.py {work} --seeds 3")


if __name__ == "__main__":
    main()
