"""Issue 28's hypotheses tested on short runs before the long one: which training data makes the null prompt
erase cleanly and an object's phrase leave the other objects alone?

    .venv/bin/python benchmarks/world_v2_pilot.py                  # about 40 minutes; results/world_v2_pilot.json
    .venv/bin/python benchmarks/world_v2_pilot.py --arms empty                # one arm more, merged into the file
    .venv/bin/python benchmarks/world_v2_pilot.py --arms subsets+empty --steps 1500   # kept as "... 1500 steps"

Every arm continues the shipped toy-shapes (UNet and text encoder, the VAE fixed) for the same number of steps
with the same recipe (toy.train.train_unet: min-SNR-5, grounding 0.1, batch 64, a cosine schedule from --lr),
and differs only in its data:
- control: the train split and today's caption mix (55% name every object, 12% a subset);
- subsets: captions that mostly name a subset of what is there, as alt text does (`subset_caption`);
- subsets+empty: the same, and 15% of the training images are backgrounds with no object, captioned "" or
  with the background's name;
- empty: today's caption mix, and the same 15% of backgrounds.
Then each continued model is measured on the removal protocol (120 held-out scenes, DDIM, omega 0 and the
omega 1 control, gamma 0, no regularization) and on context (40 two-object scenes, the first scaled at omega 5
with the default regularization): benchmarks/inversions.py's own functions.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
from diffusers import StableDiffusionPipeline

import conceptlab
from conceptlab.models import Model
from conceptlab.toy import train
from conceptlab.worlds import shapes

sys.path.insert(0, str(Path(__file__).parent))
import inversions  # noqa: E402  (the removal and context protocols, implemented once)

OUT = Path(__file__).parent / "results"
EMPTY_SHARE = 0.15


def subset_caption(labels, background, rng):
    """The pilot's alt-text-like captions: train.alt_text_caption with the background alone 10%, every object
    20%, and no size words (v1 scenes)."""
    return train.alt_text_caption(labels, None, background, rng, background_only=0.10, every=0.20, size_words=False)


def arm_data(data: dict, arm: str, rng: np.random.Generator) -> dict:
    if arm not in ("subsets+empty", "empty"):
        return data
    n = int(EMPTY_SHARE / (1 - EMPTY_SHARE) * len(data["images"]))
    bgs = [str(b) for b in rng.choice(list(shapes.BACKGROUNDS), size=n)]
    empty = np.stack([shapes.render(b, [])[0].transpose(2, 0, 1) for b in bgs])
    return dict(images=np.concatenate([data["images"], empty]), labels=data["labels"] + [[] for _ in bgs],
                backgrounds=list(data["backgrounds"]) + bgs,
                objects=np.concatenate([data["objects"], np.zeros((n, *data["objects"].shape[1:]), np.uint8)]))


def arm_captions(data: dict, arm: str):
    if arm == "control":
        return train.shapes_captions(data)
    if arm == "empty":                  # today's mix; an empty scene (which it never names) as subset_caption says

        def caption(labels, background, rng):
            return train.training_caption(labels, background, rng) if labels else subset_caption(labels, background, rng)
    else:
        caption = subset_caption

    def captions(idx, rng, tokens):
        caps, named = zip(*[caption(data["labels"][i], data["backgrounds"][i], rng) for i in idx])
        pairs = [(j, k + 1, pos) for j, (c, ks, i) in enumerate(zip(caps, named, idx))
                 for k, pc, ps in train.word_positions(tokens.words(c), data["labels"][i], ks) for pos in (pc, ps)]
        return list(caps), pairs
    return captions


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--arms", nargs="+", default=["control", "subsets", "subsets+empty"])
    ap.add_argument("--workdir", type=Path, default=Path(".toy_runs/pilot"))
    args = ap.parse_args()
    base = conceptlab.load("toy-shapes")
    data = train.world_data(20000, Path(".toy_runs/shapes"))
    out_file = OUT / "world_v2_pilot.json"
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    for arm in args.arms:
        t0 = time.time()
        rng = np.random.default_rng(0)
        d = arm_data(data, arm, rng)
        run = train.options(unet_lr=args.lr, unet_steps=args.steps,
                            command=f"world_v2_pilot {arm} {args.steps} steps lr {args.lr}")
        key = arm if args.steps == 600 else f"{arm} {args.steps} steps"
        work = args.workdir / key.replace("+", "_").replace(" ", "_")
        work.mkdir(parents=True, exist_ok=True)
        unet, text, tok, _ = train.train_unet(train.to_float(d["images"]), arm_captions(d, arm), base.vae,
                                              copy.deepcopy(base.unet).train(), copy.deepcopy(base.text_encoder).train(),
                                              base.tokenizer, run, work, objects=d["objects"])
        seconds = time.time() - t0
        pipe = StableDiffusionPipeline(vae=base.vae, text_encoder=text, tokenizer=base.tokenizer, unet=unet,
                                       scheduler=base.scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        model = Model(pipe, f"toy-shapes+{arm}", toy=True)
        inversions.METHODS[:] = ["ddim"]
        results[key] = dict(steps=args.steps, lr=args.lr, train_seconds=round(seconds),
                            removal=inversions.removal(model)["ddim"], context=inversions.context(model)["ddim"])
        print(key, json.dumps(results[key]), flush=True)
        OUT.mkdir(exist_ok=True)
        out_file.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
