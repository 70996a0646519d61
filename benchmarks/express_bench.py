"""ConceptExpress localization on toy-shapes, against the bars of the localization issue.

    .venv/bin/python benchmarks/express_bench.py            # about 90 seconds on 2 cores

1. Cost: all-pairs symmetric KL plus the whole FINCH hierarchy on 4096 distributions of 4096 bins (the
   SD 2.1-base size), over the time of the two GEMMs all pairs need, in one run; and the peak memory
   added, in units of one n x n fp32 matrix.
2. The localization benchmark (Table 3 analog): held-out toy scenes with 2 or 3 objects, Hungarian matching,
   IoU / recall / precision for ours (automatic N), k-means and FINCH with k = 2..7; the count errors;
   the paper's recipe and each of our three changes to it turned back one at a time; how many whole
   objects pass the end-of-text filter (eq. 5 and ours); and ours with a ground-truth filter in its place.
3. Structure (what notebook 07 checks on 12 of these scenes): self-attention separating objects, pre-cluster
   purity, concepts lying on objects.
Writes benchmarks/results/express.json and benchmarks/results/localization.png.
"""
from __future__ import annotations

import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import conceptlab
from conceptlab.express.cluster import finch, symmetric_kl
from conceptlab.hooks import resize_grid
from conceptlab.express import localize
from conceptlab.express.evaluate import structure, structure_rates
from conceptlab.express.localize import end_of_text_map, eot_threshold_of, record_attention
from conceptlab.worlds import shapes

import reproduced  # noqa: E402  (benchmarks/reproduced.py: the paper tables, run by conceptlab.reproduce)

OUT = Path(__file__).parent / "results"
PAPER = {"k-means 4": (52.8, 70.3, 92.7), "k-means 7": (47.6, 95.7, 75.4), "FINCH 4": (50.7, 83.7, 98.7),
         "FINCH 7": (51.5, 97.9, 77.6), "ours, paper's recipe": (57.3, 89.1, 93.7)}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cost(n: int = 4096, repeats: int = 3) -> dict:
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(4 * torch.randn(n, n, generator=g), 1)
    log_p = torch.log(p + 1e-8)
    before = peak_mib()
    gemm, ours, levels = [], [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        _ = p @ log_p.T
        _ = log_p @ p.T                                    # the two products of all pairs
        gemm.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        levels = finch(p, symmetric_kl)                    # level 1 computes the all-pairs KL of the n rows
        ours.append(time.perf_counter() - t0)
    matrix_mib = n * n * 4 / 2 ** 20
    return dict(n=n, two_gemms_s=statistics.median(gemm), kl_plus_finch_s=statistics.median(ours),
                ratio=statistics.median(ours) / statistics.median(gemm), levels=[lv.k for lv in levels],
                peak_added_mib=peak_mib() - before, nxn_matrix_mib=matrix_mib,
                peak_added_in_nxn=(peak_mib() - before) / matrix_mib, threads=torch.get_num_threads())


def objects_passing(model, scenes) -> dict:
    """Share of whole ground-truth objects whose mean end-of-text value beats the filter's threshold: the
    paper's eq. 5 (attention, image mean) and ours (log-attention, Otsu's threshold)."""
    ok = {"eq. 5": [], "ours": []}
    for s in scenes:
        cache = record_attention(model, s.image)
        grid = cache.finest("self")
        objs = resize_grid(torch.from_numpy(np.stack(s.masks)).float(), grid).numpy() > 0.5
        for name, scale, threshold in (("eq. 5", "linear", "mean"), ("ours", "log", "otsu")):
            e = end_of_text_map(cache, model, grid, scale=scale)
            bar = eot_threshold_of(e, threshold)
            e = e.reshape(grid).numpy()
            ok[name] += [e[o].mean() > bar for o in objs if o.any()]
    return {k: float(np.mean(v)) for k, v in ok.items()}


def localization(model, n: int = 120) -> tuple[dict, list[dict]]:
    """The `localization` experiment of conceptlab.reproduce (`python -m conceptlab.reproduce localization`:
    Table 3, implemented there once) on n held-out scenes with 2-3 objects, summarized; and the end-of-text
    filter's pass rates on the same scenes."""
    items = reproduced.rows("localization", model=model.name, n=n)
    rows = [dict(scene=j, method=name, n_objects=r["objects"], **scores)
            for j, r in enumerate(items) for name, scores in r["methods"].items()]
    world = shapes.world_of(model.training, default=shapes.WORLD)    # the scenes the experiment took
    scenes = [s for s in world.scenes("heldout", 4 * n) if len(s.labels) >= 2][:n]
    table = {}
    for name in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == name]
        errors = [r["count_error"] for r in rs]
        table[name] = dict(iou=float(np.mean([r["iou"] for r in rs])), recall=float(np.mean([r["recall"] for r in rs])),
                           precision=float(np.mean([r["precision"] for r in rs])),
                           count_exact=float(np.mean([e == 0 for e in errors])),
                           count_errors={str(e): errors.count(e) for e in sorted(set(errors))})
    return dict(scenes=len(scenes), objects={str(k): sum(len(s.labels) == k for s in scenes) for k in (2, 3)},
                table=table, objects_passing_eot_filter=objects_passing(model, scenes)), rows


def attention_structure(model, n: int = 120, n_max: int = 10) -> dict:
    """What notebook 07 checks on 12 scenes, on the same first n held-out scenes with 2-3 objects: the share of
    scenes whose self-attention separates objects (KL within an object < across), the pre-clusters' mean purity,
    the share of concepts lying mostly on objects (express.evaluate.structure_rates)."""
    world = shapes.world_of(model.training, default=shapes.WORLD)
    scenes = [s for s in world.scenes("heldout", 4 * n) if len(s.labels) >= 2][:n]
    return structure_rates([structure(localize(model, s.image, n_max=n_max), np.stack(s.masks)) for s in scenes])


def figure(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    df = pd.DataFrame(rows).melt(id_vars=["scene", "method"], value_vars=["iou", "recall", "precision"], var_name="score")
    fig, ax = plt.subplots(figsize=(11, 3.6))
    sns.barplot(df, x="method", y="value", hue="score", errorbar=("ci", 95), ax=ax)
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    ax.set_xlabel("")
    ax.set_title("Concept localization on held-out toy-shapes scenes (2-3 objects)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    torch.manual_seed(0)
    res = {"cost": cost()}
    c = res["cost"]
    print(f"symmetric KL + FINCH on {c['n']} x {c['n']}: {c['kl_plus_finch_s']:.2f} s = {c['ratio']:.2f}x the two GEMMs "
          f"({c['two_gemms_s']:.2f} s; bar <= 3); FINCH levels {c['levels']}; peak memory added "
          f"{c['peak_added_mib']:.0f} MiB = {c['peak_added_in_nxn']:.1f} n x n matrices")
    model = conceptlab.load("toy-shapes")
    res["localization"], rows = localization(model)
    loc = res["localization"]
    passing = loc["objects_passing_eot_filter"]
    print(f"{loc['scenes']} held-out scenes {loc['objects']}; whole objects passing the end-of-text filter: "
          f"{passing['eq. 5']:.1%} by eq. 5, {passing['ours']:.1%} by ours (log, Otsu)")
    print(f"{'method':26s} {'IoU':>6s} {'recall':>7s} {'prec.':>6s} {'N exact':>8s}   paper IoU / recall / precision (CLEVR)")
    for name, r in loc["table"].items():
        paper = " / ".join(f"{v:.1f}" for v in PAPER[name]) if name in PAPER else ""
        print(f"{name:26s} {100 * r['iou']:6.1f} {100 * r['recall']:7.1f} {100 * r['precision']:6.1f} "
              f"{100 * r['count_exact']:7.1f}%   {paper}")
    print("count errors of ours (found - true: scenes):", loc["table"]["ours"]["count_errors"])
    res["structure"] = st = attention_structure(model)
    print(f"on the same {st['scenes']} scenes: self-attention separates objects in {st['separated']:.1%}, pre-cluster "
          f"purity {st['purity']:.3f}, {st['on_objects']:.1%} of {st['concepts']} concepts lie mostly on objects")
    OUT.mkdir(exist_ok=True)
    figure(rows, OUT / "localization.png")
    (OUT / "express.json").write_text(json.dumps(res, indent=2))
    print(f"written to {OUT / 'express.json'} and {OUT / 'localization.png'}")


if __name__ == "__main__":
    main()
