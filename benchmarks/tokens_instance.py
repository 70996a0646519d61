"""Does Table 1 on toy-shapes measure the instance? Ceilings from the world's own renders, a second stand-in for
SAM's region, and the size and place the tokens learned.

    .venv/bin/python benchmarks/tokens_instance.py            # the rendered rows: seconds, no diffusion
    ... --cache .toy_runs/tokens_cache                        # + the cached generations of
                                                              #   tokens_bench.py --schedule official --seeds 3

The 20 held-out scenes of tokens_bench.py hold 50 concepts of only 12 kinds, so the prototype classifier of
ACC^1 must tell one red circle from another scene's red circle. The toy model's captions never say where an
object is or how big, so what separates two instances of a kind is their place, their size and the background.

Part 1 scores rows where the world's own renders stand in for the generations: each concept's object drawn
alone, GEN times, with some of its attributes kept and the others drawn afresh as the world draws them (place
and size as shapes._place, a random background); the composed prompt's stand-in redraws every object of the
scene the same way. "The object itself, in place" is what a perfect token of the instance would give; "its
kind only" is the best that a prompt knowing only the kind can give. Each row is scored twice, by
metrics.concept_scores on toy-clip: with the paper's region (the source masked, black elsewhere: tokens_bench's
score) and with each object alone on its own background (shapes.Scene.alone), which toy-clip was trained on.

Part 2 (with --cache) scores the cached generations of the words ("a red circle") and of both methods' tokens
(official schedule, each learning seed) with the objects alone as regions, and reads the oracle on each
generation of a concept's token: its best blob of the concept's label, whose area and centre it compares with
the source object's. Per run: the median |log(area / source area)|, the median distance of the centres in
pixels, and across concepts the correlation of the source's log area with its generations' mean log area.
The run of tokens_bench.py --no-joint (OPTIONAL) is scored on every learning seed where the cache holds them
all, and on seed 0 otherwise; each ConceptExpress run is compared with BaS-dagger on the means across seeds. Where the cache holds them, it also scores tokens_bench's other runs on learning seed 0
(VARIANTS: --masked-mean latent, the sampled schedule). Writes benchmarks/results/tokens_instance.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import conceptlab
from conceptlab import metrics
from conceptlab.images import to_tensor
from conceptlab.worlds import oracle, shapes

OUT = Path(__file__).parent / "results"
SCENES, GEN = 20, 6                                     # as tokens_bench.py
ROWS = {                                                # row -> the attributes drawn afresh
    "the object itself, in place": (),
    "its size and background, another place": ("place",),
    "its place and background, another size": ("size",),
    "its place and size, another background": ("background",),
    "its kind only": ("place", "size", "background"),
}
METHODS = {"BaS-dagger": "official_align0_joint0_split_merge0", "ConceptExpress": "official_full"}
OPTIONAL = {"ConceptExpress, no joint prompt": "official_joint0"}   # tokens_bench --no-joint: every seed, or seed 0
VARIANTS = {                                            # learning seed 0; scored when the cache holds every scene
    "ConceptExpress, eq. 8 over the latent": "official_full_scene{j}_seed{j}_latentmean",
    "BaS-dagger, sampled schedule": "sampled_align0_joint0_split_merge0_scene{j}_seed{j}",
    "ConceptExpress, sampled schedule": "sampled_full_scene{j}_seed{j}",
}
KEYS = ("sim_i", "sim_c", "acc_1", "acc_3", "acc_1_label", "acc_3_label")


def redrawn(o: shapes.ShapeObject, fresh: tuple, rng: np.random.Generator) -> shapes.ShapeObject:
    """The object with the attributes in `fresh` ("place", "size") drawn as the world draws them."""
    r = float(rng.uniform(*shapes.RADIUS)) if "size" in fresh else o.r
    reach = 1.25 * r + 1                                 # as shapes._place: the triangle's apex reaches 1.2 r
    if "place" in fresh:
        cx, cy = (float(v) for v in rng.uniform(reach, shapes.SIZE - reach, size=2))
    else:                                                # kept, moved inside the frame if it grew
        cx, cy = (float(np.clip(v, reach, shapes.SIZE - reach)) for v in (o.cx, o.cy))
    return shapes.ShapeObject(o.shape, o.colour, cx, cy, r)


def rendered(scenes, fresh: tuple, seed: int) -> tuple[list, list]:
    """Renders in place of generations: (per scene, per concept GEN images (GEN, 3, H, W) of its object alone;
    per scene GEN images of all its objects, each redrawn the same way)."""
    rng = np.random.default_rng(seed)

    def draw(s, objects):
        bg = str(rng.choice(list(shapes.BACKGROUNDS))) if "background" in fresh else s.background
        return to_tensor(shapes.render(bg, [redrawn(o, fresh, rng) for o in objects])[0])

    per = [[torch.cat([draw(s, [o]) for _ in range(GEN)]) for o in s.objects] for s in scenes]
    return per, [torch.cat([draw(s, s.objects) for _ in range(GEN)]) for s in scenes]


def found_blob(image, label: str) -> dict | None:
    """The oracle's best blob of `label` in an image when it makes the object present, else None."""
    score, blob = oracle.best_blob(image, label)
    return blob if score >= oracle.THRESHOLD else None


def centre(b: dict) -> np.ndarray:
    ys, xs = np.nonzero(b["mask"])
    return np.array([ys.mean(), xs.mean()])


def instance_fidelity(scenes, per_concept: list) -> dict:
    """per_concept: per scene, per concept, its generations (k, 3, H, W). The oracle's size and place of the
    concept's object in each generation where it finds it, against the source object's."""
    log_err, dist, src_area, gen_area = [], [], [], []
    for s, gens in zip(scenes, per_concept):
        for lab, g in zip(s.labels, gens):
            src = found_blob(s.image, lab)
            found = [b for b in (found_blob(im, lab) for im in g) if b is not None]
            if src is None or not found:                 # the oracle misses the source, or every generation
                continue
            log_err += [abs(np.log(b["area"] / src["area"])) for b in found]
            dist += [float(np.linalg.norm(centre(b) - centre(src))) for b in found]
            src_area.append(np.log(src["area"]))
            gen_area.append(np.mean([np.log(b["area"]) for b in found]))
    return dict(median_abs_log_area=float(np.median(log_err)), median_centre_px=float(np.median(dist)),
                area_correlation=float(np.corrcoef(src_area, gen_area)[0, 1]), concepts=len(src_area))


def line(name: str, r: dict, keys=KEYS) -> str:
    return f"{name:42s} " + " ".join(f"{r[k]:6.3f}" for k in keys)


def score_cached(clip, scenes, folders: list, sources, labels, alone) -> tuple[dict, str]:
    """One cached run of tokens_bench (a folder per scene): its scores with the objects alone as regions and the
    oracle's size and place, and their printed line (without the name)."""
    entries = [torch.load(f / "entry.pt") for f in folders]
    per = [e["per_concept"] for e in entries]
    r = dict(**metrics.concept_scores(clip, sources, per, [e["composed"] for e in entries], labels, alone),
             **instance_fidelity(scenes, per))
    return r, f" {r['median_abs_log_area']:10.3f} {r['median_centre_px']:9.2f} {r['area_correlation']:9.2f}"


def main():
    ap = argparse.ArgumentParser(description="what Table 1's scores measure on toy-shapes, and the instance the tokens learned")
    ap.add_argument("--cache", type=Path, default=None,
                    help="tokens_bench.py's cache folder: also score its generations with the objects alone as regions")
    ap.add_argument("--seeds", type=int, default=3, help="learning seeds to read from the cache (official schedule)")
    args = ap.parse_args()
    torch.manual_seed(0)
    clip = conceptlab.load_clip("toy-clip")
    scenes = [s for s in shapes.scenes("heldout", 4 * SCENES, start=300) if len(s.labels) >= 2][:SCENES]
    sources = [(to_tensor(s.image), np.stack(s.masks)) for s in scenes]
    labels = [list(s.labels) for s in scenes]
    alone = [[to_tensor(s.alone(i)) for i in range(len(s.labels))] for s in scenes]
    res = dict(scenes=len(scenes), concepts=sum(map(len, labels)), kinds=len({x for s in labels for x in s}),
               generations_per_prompt=GEN, rendered={"masked regions": {}, "objects alone": {}})
    head = f"{'':42s} {'SIM^I':>6s} {'SIM^C':>6s} {'ACC^1':>6s} {'ACC^3':>6s} {'by label':>13s}"
    for regions, title in ((None, "masked regions"), (alone, "objects alone")):
        print(f"rendered rows, scored with the {title} as regions\n{head}")
        for k, (row, fresh) in enumerate(ROWS.items()):
            per, comp = rendered(scenes, fresh, seed=k)
            r = res["rendered"][title][row] = metrics.concept_scores(clip, sources, per, comp, labels, regions)
            print(line(row, r))
    if args.cache is not None:
        runs = {"the words, no learning": [args.cache / f"words_scene{j}" for j in range(len(scenes))]}
        runs.update({f"{m}, seed {r}": [args.cache / f"{stem}_scene{j}_seed{j + 1000 * r}" for j in range(len(scenes))]
                     for m, stem in METHODS.items() for r in range(args.seeds)})
        missing = [f for folders in runs.values() for f in folders if not (f / "entry.pt").exists()]
        if missing:
            raise SystemExit(f"{missing[0]} is not in the cache: run tokens_bench.py --schedule official --table-only "
                             f"--seeds {args.seeds} --cache {args.cache} first")
        res["generations"] = {}
        print(f"\ngenerations, scored with the objects alone as regions\n{head}"
              f" {'|log area|':>10s} {'centre px':>9s} {'area corr':>9s}")
        for name, folders in runs.items():
            res["generations"][name], tail = score_cached(clip, scenes, folders, sources, labels, alone)
            print(line(name, res["generations"][name]) + tail)
        seeded = dict(METHODS)
        for name, stem in OPTIONAL.items():                 # scored on every seed where the cache holds them all
            folders = {r: [args.cache / f"{stem}_scene{j}_seed{j + 1000 * r}" for j in range(len(scenes))]
                       for r in range(args.seeds)}
            if all((f / "entry.pt").exists() for fs in folders.values() for f in fs):
                seeded[name] = stem
                for r, fs in folders.items():
                    res["generations"][f"{name}, seed {r}"], tail = score_cached(clip, scenes, fs, sources, labels, alone)
                    print(line(f"{name}, seed {r}", res["generations"][f"{name}, seed {r}"]) + tail)
        res["seeds"] = dict(count=args.seeds)
        for m in seeded:
            runs_m = [res["generations"][f"{m}, seed {r}"] for r in range(args.seeds)]
            res["seeds"][m] = {k: dict(mean=float(np.mean([x[k] for x in runs_m])), std=float(np.std([x[k] for x in runs_m])))
                               for k in KEYS}
        base = res["seeds"]["BaS-dagger"]
        for m in list(seeded)[1:]:                          # each ConceptExpress run against BaS-dagger
            wins = sum(res["seeds"][m][k]["mean"] > base[k]["mean"] for k in KEYS[:4])
            res["seeds"]["wins_on_means" + ("" if m == "ConceptExpress" else f" ({m})")] = wins
            print(f"across {args.seeds} seeds, {m} beats BaS-dagger on {wins} of SIM^I, SIM^C, ACC^1, ACC^3 on the means")
        res["variants"] = {}
        variants = dict(VARIANTS)                           # + the optional runs not on every seed: seed 0 alone
        variants.update({name: stem + "_scene{j}_seed{j}" for name, stem in OPTIONAL.items() if name not in seeded})
        for name, stem in variants.items():                 # other runs of tokens_bench, where the cache has them
            folders = [args.cache / stem.format(j=j) for j in range(len(scenes))]
            if all((f / "entry.pt").exists() for f in folders):
                res["variants"][name], tail = score_cached(clip, scenes, folders, sources, labels, alone)
                print(line(name + ", seed 0", res["variants"][name]) + tail)
    OUT.mkdir(exist_ok=True)
    (OUT / "tokens_instance.json").write_text(json.dumps(res, indent=2))
    print(f"written to {OUT / 'tokens_instance.json'}")


if __name__ == "__main__":
    main()
