"""ConceptExpress token learning on toy-shapes, against the bars of the token-learning issue.

    .venv/bin/python benchmarks/tokens_bench.py             # about 35 minutes on 2 cores
    .venv/bin/python benchmarks/tokens_bench.py --seeds 3   # + BaS-dagger and ConceptExpress with 2 more
                                                            #   learning seeds per scene (about 75 minutes)
    .venv/bin/python benchmarks/tokens_bench.py --schedule official --table-only
                                        # the authors' every-prompt-every-step schedule, BaS-dagger and
                                        # ConceptExpress only (about 5 minutes a scene), to tokens_official.json
    ... --cache .toy_runs/tokens_cache          # keep every learned run; a stopped run goes on where it stopped
    ... --masked-mean latent --out F            # eq. 8 averaged over the whole latent, as the authors' code
    ... --no-joint --out F                      # ConceptExpress as the paper's text: no joint prompt
    ... --schedule authors --scenes 8           # ConceptExpress as the authors' code trains it
                                                # (express.AUTHORS_TOKENS; it alone), to tokens_authors.json

Held-out scenes with 2-3 objects; the concepts are the ground-truth masks (SAM's stand-in), each with its
mean self-attention distribution f_i. For each scene, tokens are learned 500 steps by ConceptExpress and by
Break-A-Scene-dagger (and, on the first ABLATION scenes, by the two middle rows of the ablation); each
token generates GEN images from "a <c_i>" and the composed prompt GEN images; scores: SIM^I, SIM^C, ACC^1,
ACC^3 in toy-clip image features (metrics.concept_scores; ACC also by label, one prototype per object kind:
toy scenes repeat their objects), and the oracle's presence of the concept's
object in its token's generations. A reference row scores the object's own words ("a red circle") with the
same generation seeds: what a token that knows only the kind of object would score. Extract-then-scale:
ScalingConcept with each ConceptExpress token as the concept prompt, omega 0..5; the oracle's presence of the
target object and of the others.
With --seeds K, every scene's tokens are learned again with K - 1 other seeds (the learning seed only: the
generations' seeds stay, so both methods are scored on the same noise); "seeds" in the results holds each
seed's four scores, their mean and standard deviation across seeds, and on how many of the four scores
ConceptExpress beats BaS-dagger, for each seed and on the means.
Writes benchmarks/results/tokens.json (tokens_official.json with --schedule official).
The scores take the paper's region (the source masked, black elsewhere), which toy-clip misreads:
benchmarks/tokens_instance.py scores the cached generations again with each object alone as its region.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import conceptlab
from conceptlab import express, inversion, metrics, scaling
from conceptlab.express.evaluate import concepts_from_masks
from conceptlab.images import to_tensor
from conceptlab.worlds import oracle, shapes

OUT = Path(__file__).parent / "results"
SCENES, ABLATION, GEN, GEN_STEPS = 20, 8, 6, 25
METHODS = {"BaS-dagger": dict(split_merge=False, align=False, joint=False),
           "+ split-and-merge": dict(split_merge=True, align=False),
           "+ attention alignment": dict(split_merge=False, align=True),
           "ConceptExpress": dict()}
OMEGAS = [0.0, 1.0, 2.0, 3.0, 5.0]


def generations(model, prompt: str, seed: int) -> torch.Tensor:
    return torch.cat([to_tensor(model.generate(prompt, steps=GEN_STEPS, guidance=5.0, seed=seed + k)) for k in range(GEN)])


def learn_and_generate(model, scene, concepts, kw: dict, j: int, seed: int, bucket: dict, schedule: str = "sampled",
                       cache: Path | None = None, masked_mean: str = "mask"):
    """Learn the scene's tokens with one method and seed, generate from each token and from the composed
    prompt (seeds from the scene index j), and append everything the scores need to `bucket`.
    With a cache folder, a (method, scene, seed) already learned and generated there is read back instead
    (the tokens and the generations), so that a long run stopped midway goes on where it stopped.
    masked_mean="latent" (eq. 8 averaged over the whole latent, as the authors' code) gets its own cache entries,
    except for Break-A-Scene-dagger: with the masked loss alone, the two averages differ by a constant factor per
    token, which AdamW cancels (500 steps on a scene, both schedules: the embeddings agree to 3e-5)."""
    name = f"{schedule}_{'_'.join(f'{k}{int(v)}' for k, v in sorted(kw.items())) or 'full'}_scene{j}_seed{seed}"
    masked_only = not any(kw.get(k, True) for k in ("split_merge", "align", "joint"))
    if masked_mean != "mask" and not masked_only:
        name += f"_{masked_mean}mean"
    if cache is not None and (cache / name / "entry.pt").exists():
        entry = torch.load(cache / name / "entry.pt")
        learned = express.ConceptTokens.load(cache / name)
        m2 = learned.apply(model)
    else:
        t0 = time.perf_counter()
        if schedule == "authors":                       # the authors' whole recipe: their loop, init, EMD
            learned = express.learn_tokens(model, scene.image, concepts, steps=500, seed=seed, progress=False,
                                           **{**express.AUTHORS_TOKENS, **kw})
        else:
            learned = express.learn_tokens(model, scene.image, concepts, steps=500, seed=seed, schedule=schedule,
                                           masked_mean=masked_mean, progress=False, **kw)
        seconds = time.perf_counter() - t0
        m2 = learned.apply(model)
        gens = [generations(m2, f"a {t}", 100 * j) for t in learned.tokens]
        entry = dict(seconds=seconds, per_concept=gens,
                     composed=generations(m2, "a " + " and a ".join(learned.tokens), 100 * j + 50),
                     present=[bool(oracle.is_present(im, lab)) for g, lab in zip(gens, scene.labels) for im in g])
        if cache is not None:                   # entry.pt last, by rename: a run stopped while writing leaves none
            learned.save(cache / name)
            torch.save(entry, cache / name / "entry.pt.part")
            (cache / name / "entry.pt.part").replace(cache / name / "entry.pt")
    bucket["seconds"].append(entry["seconds"])
    bucket["sources"].append((to_tensor(scene.image), np.stack(scene.masks)))
    bucket["labels"].append(list(scene.labels))
    bucket["per_concept"].append(entry["per_concept"])
    bucket["composed"].append(entry["composed"])
    bucket["present"] += entry["present"]
    return learned, m2


def words_reference(model, scenes, cache: Path | None = None) -> dict:
    """The reference row "the object's own words": each concept's generations from "a red circle" (its label,
    words the model was trained on) and the composed "a red circle and a blue square", with the same generation
    seeds as the learned tokens; no learning. It shows how far a token that learned only the kind of object
    goes on each score."""
    bucket = empty()
    for j, s in enumerate(scenes):
        path = None if cache is None else cache / f"words_scene{j}" / "entry.pt"
        if path is not None and path.exists():
            entry = torch.load(path)
        else:
            entry = dict(per_concept=[generations(model, f"a {lab}", 100 * j) for lab in s.labels],
                         composed=generations(model, "a " + " and a ".join(s.labels), 100 * j + 50))
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(entry, path.with_suffix(".part"))
                path.with_suffix(".part").replace(path)
        bucket["sources"].append((to_tensor(s.image), np.stack(s.masks)))
        bucket["labels"].append(list(s.labels))
        bucket["per_concept"].append(entry["per_concept"])
        bucket["composed"].append(entry["composed"])
        bucket["present"] += [bool(oracle.is_present(im, lab)) for g, lab in zip(entry["per_concept"], s.labels) for im in g]
    return bucket


def empty() -> dict:
    return dict(sources=[], labels=[], per_concept=[], composed=[], present=[], seconds=[])


def main():
    ap = argparse.ArgumentParser(description="ConceptExpress token learning on toy-shapes (Tables 1-2 analogs)")
    ap.add_argument("--seeds", type=int, default=1, help="learning seeds per scene for BaS-dagger and ConceptExpress")
    ap.add_argument("--schedule", choices=["sampled", "official", "authors"], default="sampled",
                    help="learn_tokens' schedule: one prompt a step (default), every prompt every step, or the "
                         "authors' loop with their other choices (express.AUTHORS_TOKENS; ConceptExpress only)")
    ap.add_argument("--scenes", type=int, default=SCENES, help=f"held-out scenes (default {SCENES}, the bar's count)")
    ap.add_argument("--masked-mean", choices=["mask", "latent"], default="mask",
                    help="learn_tokens' average of eq. 8: over the concept's mask (default) or over the whole latent "
                         "(the authors' code)")
    ap.add_argument("--no-joint", action="store_true",
                    help="ConceptExpress without the joint prompt \"a <c_0> and <c_1> ...\" after the merge: the method as "
                         "the paper describes it (the authors' code trains it)")
    ap.add_argument("--table-only", action="store_true",
                    help="BaS-dagger and ConceptExpress only: no ablation rows, no extract-then-scale")
    ap.add_argument("--out", type=Path, default=None,
                    help="the results file (default benchmarks/results/tokens.json, tokens_official.json with "
                         "--schedule official)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="keep each learned (method, scene, seed) and its generations in this folder, and read "
                         "back what is already there: a run stopped midway goes on where it stopped")
    args = ap.parse_args()
    if args.seeds < 1 or args.scenes < 1:
        ap.error(f"--seeds and --scenes must be at least 1, got {args.seeds} and {args.scenes}")
    torch.manual_seed(0)
    model = conceptlab.load("toy-shapes")
    clip = conceptlab.load_clip("toy-clip")
    scenes = [s for s in shapes.scenes("heldout", 4 * args.scenes, start=300) if len(s.labels) >= 2][:args.scenes]
    methods = {**METHODS, "ConceptExpress": dict(joint=False)} if args.no_joint else METHODS
    if args.schedule == "authors":                          # their loop has split-and-merge: no BaS-dagger, no ablation
        methods, args.table_only, args.seeds = {"ConceptExpress": methods["ConceptExpress"]}, True, 1
    per = {m: empty() for m in methods}
    scale_rows = []
    for j, s in enumerate(scenes):
        concepts = concepts_from_masks(model, s.image, np.stack(s.masks))
        for name, kw in methods.items():
            if name in ("+ split-and-merge", "+ attention alignment") and (j >= ABLATION or args.table_only):
                continue
            learned, m2 = learn_and_generate(model, s, concepts, kw, j, j, per[name], args.schedule, args.cache,
                                             args.masked_mean)
            if name == "ConceptExpress" and not args.table_only:
                for i, (t, lab) in enumerate(zip(learned.tokens, s.labels)):
                    inv = inversion.invert(m2, s.image, f"a {t}", steps=50)
                    ims = scaling.sweep(m2, inv, f"a {t}", OMEGAS, steps=50)
                    others = [l for k, l in enumerate(s.labels) if k != i]
                    scale_rows.append(dict(target=[oracle.presence(im, lab) for im in ims],
                                           others=[float(np.mean([oracle.presence(im, o) for o in others])) for im in ims]))
        print(f"scene {j + 1}/{len(scenes)} {s.labels}: " + ", ".join(
            f"{m} {np.mean(v['present'][-GEN * len(s.labels):]):.0%}" for m, v in per.items() if v["sources"]), flush=True)
    words = words_reference(model, scenes, args.cache)
    pair = ("BaS-dagger", "ConceptExpress") if "BaS-dagger" in methods else ("ConceptExpress",)
    by_seed = [{m: per[m] for m in pair}]
    for r in range(1, args.seeds):          # the same scenes and generation seeds, another learning seed
        by_seed.append({m: empty() for m in pair})
        for j, s in enumerate(scenes):
            concepts = concepts_from_masks(model, s.image, np.stack(s.masks))
            for m in pair:
                learn_and_generate(model, s, concepts, methods[m], j, j + 1000 * r, by_seed[-1][m], args.schedule,
                                   args.cache, args.masked_mean)
            print(f"seed {r + 1}/{args.seeds}, scene {j + 1}/{len(scenes)}", flush=True)
    res = dict(scenes=len(scenes), ablation_scenes=0 if args.table_only else ABLATION, generations_per_prompt=GEN,
               steps=500, schedule=args.schedule, masked_mean=args.masked_mean, joint=not args.no_joint, table={})
    per = {name: v for name, v in per.items() if v["sources"]}
    for name, v in per.items():
        scores = metrics.concept_scores(clip, v["sources"], v["per_concept"], v["composed"], v["labels"])
        per_scene = [metrics.concept_scores(clip, [a], [b], [c]) for a, b, c in zip(v["sources"], v["per_concept"], v["composed"])]
        res["table"][name] = dict(scenes=len(v["sources"]), **scores,
                                  spread={k: float(np.std([p[k] for p in per_scene])) for k in ("sim_i", "sim_c")},
                                  oracle_present=float(np.mean(v["present"])), seconds_median=float(np.median(v["seconds"])))
    res["reference_words"] = dict(scenes=len(scenes), **metrics.concept_scores(clip, words["sources"], words["per_concept"],
                                                                               words["composed"], words["labels"]),
                                  oracle_present=float(np.mean(words["present"])))
    # the same comparison on the ablation scenes only, so that all four rows share their scenes
    if not args.table_only:
        res["table_ablation_scenes"] = {name: metrics.concept_scores(clip, v["sources"][:ABLATION], v["per_concept"][:ABLATION],
                                                                     v["composed"][:ABLATION], v["labels"][:ABLATION])
                                        for name, v in per.items()}
    keys = ("sim_i", "sim_c", "acc_1", "acc_3")
    by_label = ("sim_i", "sim_c", "acc_1_label", "acc_3_label")         # ACC with one prototype per label
    scored = [{m: metrics.concept_scores(clip, v["sources"], v["per_concept"], v["composed"], v["labels"])
               for m, v in b.items()} for b in by_seed]
    res["seeds"] = dict(count=len(by_seed), learning_seeds="scene index j + 1000 r, r = 0..count-1")
    for m in pair:
        res["seeds"][m] = {key: dict(per_seed=[sc[m][key] for sc in scored], mean=float(np.mean([sc[m][key] for sc in scored])),
                                     std=float(np.std([sc[m][key] for sc in scored]))) for key in keys + by_label[2:]}
    if len(pair) == 2:
        res["seeds"]["wins_per_seed"] = [sum(sc[pair[1]][key] > sc[pair[0]][key] for key in keys) for sc in scored]
        res["seeds"]["wins_on_means"] = sum(res["seeds"][pair[1]][key]["mean"] > res["seeds"][pair[0]][key]["mean"]
                                            for key in keys)
        res["seeds"]["wins_per_seed_by_label"] = [sum(sc[pair[1]][key] > sc[pair[0]][key] for key in by_label)
                                                  for sc in scored]
        res["seeds"]["wins_on_means_by_label"] = sum(res["seeds"][pair[1]][key]["mean"] > res["seeds"][pair[0]][key]["mean"]
                                                     for key in by_label)
    if scale_rows:
        t = np.array([r["target"] for r in scale_rows])
        o = np.array([r["others"] for r in scale_rows])
        res["extract_then_scale"] = dict(omegas=OMEGAS, concepts=len(scale_rows), target=t.mean(0).tolist(),
                                         others=o.mean(0).tolist())
    print(f"{'method':24s} {'SIM^I':>6s} {'SIM^C':>6s} {'ACC^1':>6s} {'ACC^3':>6s} {'by label':>13s} {'oracle':>7s} "
          f"{'s/500 steps':>11s}")
    for name, r in res["table"].items():
        print(f"{name:24s} {r['sim_i']:6.3f} {r['sim_c']:6.3f} {r['acc_1']:6.3f} {r['acc_3']:6.3f} "
              f"{r['acc_1_label']:6.3f} {r['acc_3_label']:6.3f} {r['oracle_present']:7.0%} "
              f"{r['seconds_median']:11.1f}   ({r['scenes']} scenes)")
    r = res["reference_words"]
    print(f"{'(the words, no learning)':24s} {r['sim_i']:6.3f} {r['sim_c']:6.3f} {r['acc_1']:6.3f} {r['acc_3']:6.3f} "
          f"{r['acc_1_label']:6.3f} {r['acc_3_label']:6.3f} {r['oracle_present']:7.0%}")
    if scale_rows:
        print("extract-then-scale, omega " + " / ".join(f"{w:g}" for w in OMEGAS) + ": target presence "
              + " / ".join(f"{v:.2f}" for v in res["extract_then_scale"]["target"]) + "; others "
              + " / ".join(f"{v:.2f}" for v in res["extract_then_scale"]["others"]))
    if len(by_seed) > 1:
        print(f"across {len(by_seed)} learning seeds (mean +- std):")
        for m in pair:
            print(f"{m:24s} " + " ".join(f"{res['seeds'][m][key]['mean']:6.3f}+-{res['seeds'][m][key]['std']:.3f}" for key in keys))
        print(f"ConceptExpress beats BaS-dagger on {res['seeds']['wins_on_means']} of 4 scores on the means; "
              f"per seed: {res['seeds']['wins_per_seed']}")
    if len(pair) == 2:
        print(f"with ACC by label: ConceptExpress beats BaS-dagger on {res['seeds']['wins_on_means_by_label']} of 4 scores "
              f"on the means; per seed: {res['seeds']['wins_per_seed_by_label']}")
    OUT.mkdir(exist_ok=True)
    out = args.out or OUT / {"sampled": "tokens.json", "official": "tokens_official.json",
                             "authors": "tokens_authors.json"}[args.schedule]
    out.write_text(json.dumps(res, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
