"""Why a v2 toy-shapes fails two of the issue's bars, read from a training's checkpoint (a pilot's or a full run's
workdir) or an exported toy-shapes folder, as benchmarks/world_v2_peek.py loads it.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/world_v2_diagnose.py WORKDIR two-objects [--n 100] [--record]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/world_v2_diagnose.py WORKDIR end-of-text [--n 40] [--record]
    .venv/bin/python benchmarks/world_v2_diagnose.py runs/bench/removal-...-n120-steps50 removal-leftovers

two-objects: the first --n two-object prompts of toy_quality.generation (the same draw), 25 steps, guidance 5:
  how many find both objects, only the first-named, only the second-named, neither; and for a missing object
  what the oracle sees instead (about 2 minutes for 100 at 1 thread).
end-of-text: on the first --n held-out v2 scenes with 2-3 objects, the end-of-text map of "" (16x16 layers, as
  localize reads it): the share of objects whose mean beats the background's, by colour, and of scenes where
  every object does; then localization (metrics.match_masks) with localize's defaults, with the ground-truth
  object filter at delta x 1, 2, 3, 5 and no cut, and with the paper's filter settings.
removal-leftovers: on a finished removal run's folder (conceptlab.reproduce's, as world_v2.py and
  world_v2_removal_peek.py leave it in runs/bench), its removals that are not clean: what covers the removed
  object's place, read from the saved images by the oracle's blobs (a blob of the removed object's own colour, of
  another named object's colour, or of a new colour); and over all its removals, what a clean erase must also keep:
  the PSNR outside the removed object (against the input) and the share of the other objects still found.
With --record the reading is kept in benchmarks/results/world_v2_unet_pilot.json under
"<workdir's name> @ <step>, <what> (n)".
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from conceptlab import metrics
from conceptlab.express.evaluate import object_filter
from conceptlab.express.localize import end_of_text_attention, localize, record_attention
from conceptlab.hooks import resize_grid
from conceptlab.images import to_tensor
from conceptlab.worlds import oracle, shapes

sys.path.insert(0, str(Path(__file__).parent))
import world_v2_peek  # noqa: E402  (a workdir's checkpoint as a model; the pilots' results file)

W = shapes.V2


def two_object_prompts(n: int) -> list[list[str]]:
    """toy_quality.generation's two-object draw (rng seed 0), its first n: two different kinds each."""
    rng = np.random.default_rng(0)
    return [[W.labels[a], W.labels[b]] for a, b in (rng.choice(len(W.labels), 2, replace=False) for _ in range(n))]


def two_objects(model, n: int) -> dict:
    bgs = list(shapes.BACKGROUNDS)
    items = [(labs, bgs[i % 3] if i % 2 else None) for i, labs in enumerate(two_object_prompts(n))]
    obj = lambda lab: shapes.ShapeObject(lab.split()[1], lab.split()[0], 0, 0, 1)       # noqa: E731
    prompts = [shapes.caption_for([obj(lab) for lab in labs], bg) for labs, bg in items]
    found, instead = collections.Counter(), collections.Counter()
    for j in range(0, n, 50):
        images = model.generate(prompts[j:j + 50], steps=25, guidance=5.0, seed=j)
        for im, (labs, _) in zip(images, items[j:j + 50]):
            first, second = (oracle.is_present(im, lab, world=W) for lab in labs)
            found["both" if first and second else "first only" if first else "second only" if second else
                  "neither"] += 1
            if first != second:                              # one is missing: what is drawn in its stead?
                miss = labs[1] if first else labs[0]
                seen = [lab for lab, p in oracle.detect(im, world=W).items() if p >= oracle.THRESHOLD
                        and lab not in labs]
                instead["its colour, another shape" if any(s.split()[0] == miss.split()[0] for s in seen) else
                        "its shape, another colour" if any(s.split()[1] == miss.split()[1] for s in seen) else
                        "nothing new"] += 1
    return dict(prompts=n, **found, missing_one_instead=dict(instead))


def end_of_text(model, n: int) -> dict:
    scenes = [s for s in W.scenes("heldout", 4 * n) if len(s.labels) >= 2][:n]
    above, every = collections.defaultdict(list), []
    rows = collections.defaultdict(list)
    for s in scenes:
        cache = record_attention(model, s.image)
        grid = cache.finest("self")
        e = end_of_text_attention(cache, model, grid).reshape(grid).numpy()
        objs = resize_grid(torch.from_numpy(np.stack(s.masks)).float(), grid).numpy() > 0.5
        bg = ~objs.any(0)
        ok = [bool(e[o].mean() > e[bg].mean()) for o in objs if o.any()]
        every.append(all(ok))
        for o, lab in zip(objs, s.labels):
            if o.any():
                above[lab.split()[0]].append(bool(e[o].mean() > e[bg].mean()))
        truth = np.stack(s.masks)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loc = localize(model, to_tensor(s.image, model.image_size))
            keep = object_filter(truth, loc.grid)
            variants = {"ours": loc, "ours, filter as eq. 5": loc.redo(eot_scale="linear", eot_threshold="mean")}
            for f in (1.0, 2.0, 3.0, 5.0, float("inf")):
                variants[f"object filter, delta x{f:g}"] = loc.redo(keep=keep, delta_factor=f)
        for name, v in variants.items():
            rows[name].append(metrics.match_masks(v.masks(), truth))
    share = {c: round(float(np.mean(v)), 4) for c, v in sorted(above.items())}
    loc_table = {name: dict(iou=round(float(np.mean([r["iou"] for r in rs])), 4),
                            precision=round(float(np.mean([r["precision"] for r in rs])), 4),
                            count_exact=round(float(np.mean([r["count_error"] == 0 for r in rs])), 4),
                            mean_count_error=round(float(np.mean([r["count_error"] for r in rs])), 4))
                 for name, rs in rows.items()}
    return dict(scenes=n, objects_above_background=round(float(np.mean(sum(above.values(), []))), 4),
                by_colour=share, scenes_every_object_above=round(float(np.mean(every)), 4), localization=loc_table)


def removal_leftovers(folder: Path) -> dict:
    from PIL import Image

    rows = [json.loads(line) for line in (folder / "rows.jsonl").read_text().splitlines()]
    what, psnr, others = collections.Counter(), [], []
    for r in rows:
        split, index = r["id"].split("/")
        s = W.scene(split, int(index))
        image = np.asarray(Image.open(folder / "items" / split / index / "removed.png").convert("RGB"))
        place, colour = np.asarray(s.masks[0], bool), r["label"].split()[0]
        # the rest of the scene: PSNR outside the removed object, and the other objects still found
        before = np.asarray(Image.open(folder / "items" / split / index / "input.png").convert("RGB"))
        mse = ((image.astype(float) - before.astype(float)) ** 2)[~place].mean()
        psnr.append(10 * np.log10(255 ** 2 / max(mse, 1e-10)))
        others += [oracle.is_present(image, lab, world=W) for lab in s.labels[1:]]
        if not r["removed"] or r.get("clean"):
            continue
        covers = {("its own colour" if c == colour else "another object's colour"
                   if any(lab.split()[0] == c for lab in s.labels[1:]) else "a new colour")
                  for c in W.colours for b in oracle.blobs(image, c, W) if (b["mask"] & place).sum() >= 0.25 * place.sum()}
        what[" + ".join(sorted(covers))] += 1
    return dict(removals=len(rows), removed_not_clean=sum(what.values()), covered_by=dict(what),
                psnr_outside=round(float(np.mean(psnr)), 2), other_objects_kept=round(float(np.mean(others)), 4),
                other_objects=len(others))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workdir", type=Path, help="a training's workdir (its unet.ckpt), or an exported toy-shapes folder")
    p.add_argument("what", choices=["two-objects", "end-of-text", "removal-leftovers"])
    p.add_argument("--n", type=int, default=None, help="prompts (two-objects, default 100) or scenes (end-of-text, 40)")
    p.add_argument("--record", action="store_true", help=f"keep the reading in {world_v2_peek.RESULTS}")
    args = p.parse_args()
    if args.what == "removal-leftovers":
        print(args.workdir.name, json.dumps(removal_leftovers(args.workdir)))
        return
    n = args.n or (100 if args.what == "two-objects" else 40)
    with tempfile.TemporaryDirectory() as tmp:
        model, step = world_v2_peek.load(args.workdir, Path(tmp))
        reading = (two_objects if args.what == "two-objects" else end_of_text)(model, n)
    key = f"{args.workdir.name} @ {step}, {args.what} ({n})"
    print(key, json.dumps(reading))
    if args.record:
        res = world_v2_peek.RESULTS
        found = json.loads(res.read_text()) if res.exists() else {}
        found[key] = dict(command="benchmarks/world_v2_diagnose.py " + " ".join(sys.argv[1:]), **reading)
        res.write_text(json.dumps(dict(sorted(found.items())), indent=1) + "\n")


if __name__ == "__main__":
    main()
