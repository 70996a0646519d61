"""Which loss drives ConceptExpress's tokens on the toy model? The size of each term's gradient.

    .venv/bin/python benchmarks/tokens_balance.py                       # about 6 minutes on 2 cores
    .venv/bin/python benchmarks/tokens_balance.py --schedule official   # every prompt every step (slower)

ConceptExpress learns each token from three terms, at the authors' weights: the masked denoising loss (eq. 8),
the supervised contrastive loss of split-and-merge (alpha 1e-3, first 100 steps) and the EMD attention
alignment (eq. 11, beta 1e-5). The weights were tuned on SD 2.1 at 512 px; the toy model's loss scales are
its own. On the first held-out scenes of tokens_bench.py, learn_tokens(record_gradients=True) records per step
the norm of each term's gradient on the rows being learned; this reports their medians over the split phase
and over the merged phase, as ratios to the masked term.

Our eq. 8 is the mean squared error over the concept's mask. The official code takes the mean over the whole
latent (F.mse_loss of the masked tensors), which scales the masked term by the mask's share of the latent:
the report gives that share, and the ratios the official normalization would give (the ratio divided by the
mean share; approximate, since each prompt has its own mask).
Writes benchmarks/results/tokens_balance.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import conceptlab
from conceptlab import express
from conceptlab.express.evaluate import concepts_from_masks
from conceptlab.worlds import shapes

OUT = Path(__file__).parent / "results"


def main():
    ap = argparse.ArgumentParser(description="the size of each ConceptExpress loss term's gradient on toy scenes")
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--schedule", choices=["sampled", "official"], default="sampled")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = conceptlab.load("toy-shapes")
    scenes = [s for s in shapes.scenes("heldout", 4 * args.scenes, start=300) if len(s.labels) >= 2][:args.scenes]
    ratios = {"split": {"contrastive": [], "emd": []}, "merged": {"emd": []}}
    shares = []
    with torch.no_grad():
        z_side = tuple(model.encode(torch.zeros(1, 3, *model.image_size)).shape[-2:])
    for j, s in enumerate(scenes):
        masks = np.stack(s.masks)
        learned = express.learn_tokens(model, s.image, concepts_from_masks(model, s.image, masks), steps=500, seed=j,
                                       schedule=args.schedule, progress=False, record_gradients=True)
        split = learned.settings["split_steps"]
        g = {k: np.array(learned.curves[f"grad_{k}"]) for k in ("masked", "contrastive", "emd")}
        for phase, sl in (("split", slice(0, split)), ("merged", slice(split, None))):
            for k in ratios[phase]:
                ratios[phase][k].append(float(np.median(g[k][sl] / g["masked"][sl])))
        m = torch.from_numpy(masks).float()[:, None]                      # each mask's share, as learn_tokens sees it
        shares += F.interpolate(m, size=z_side, mode="area").mean((1, 2, 3)).tolist()
        print(f"scene {j + 1}/{len(scenes)} {s.labels}: split contrastive/masked {ratios['split']['contrastive'][-1]:.3f}, "
              f"emd/masked {ratios['split']['emd'][-1]:.4f}; merged emd/masked {ratios['merged']['emd'][-1]:.4f}", flush=True)
    share = float(np.mean(shares))
    res = dict(scenes=len(scenes), schedule=args.schedule, steps=500, mask_share_of_latent=share,
               median_ratio_to_masked={p: {k: float(np.mean(v)) for k, v in r.items()} for p, r in ratios.items()},
               per_scene=ratios)
    res["official_normalization_approx"] = {p: {k: v / share for k, v in r.items()}
                                            for p, r in res["median_ratio_to_masked"].items()}
    print(f"mean mask share of the latent {share:.3f}")
    for p, r in res["median_ratio_to_masked"].items():
        print(f"{p:7s} " + ", ".join(f"{k}/masked {v:.4f} (official normalization about {v / share:.3f})" for k, v in r.items()))
    OUT.mkdir(exist_ok=True)
    out = OUT / ("tokens_balance.json" if args.schedule == "sampled" else "tokens_balance_official.json")
    out.write_text(json.dumps(res, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
