"""ConceptExpress's experiments: `localization` (Table 3) and `concept-tokens` (Table 1).

Both need images whose objects' masks are known: the toy world's held-out scenes with 2-3 objects by default
(on a real model, scaled to its size), or `--data`, a folder of <name>.png beside <name>.masks.npz
(conceptlab.reproduce.data).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import course, express, metrics
from ..express.evaluate import compare, concepts_from_masks
from ..images import to_pil, to_tensor
from ..worlds import oracle, shapes
from .data import read_masks, toy_scene_items, with_masks
from .runner import Experiment, bar_figure
from .scaling_tables import load_model

LOCALIZATION_PAPER = {"k-means 4": (52.8, 70.3, 92.7), "k-means 7": (47.6, 95.7, 75.4), "FINCH 4": (50.7, 83.7, 98.7),
                      "FINCH 7": (51.5, 97.9, 77.6), "ours, paper's recipe": (57.3, 89.1, 93.7)}


def scene_of(model, item: dict):
    """The item's image and masks at the model's size (a shapes Scene on a toy model)."""
    if "index" in item:
        world = shapes.world_of(model.training, default=shapes.WORLD)
        return course.at_model_size(world.scene("heldout", item["index"]), model)
    from PIL import Image

    original = np.asarray(Image.open(item["path"]).convert("RGB"))
    masks = read_masks(item, original)
    whole = course.Subject(original, "", [f"object {k + 1}" for k in range(len(masks))], item["path"], masks)
    image = np.asarray(course.fit(item["path"], model.image_size)[0])       # the image resized smoothly,
    return course.Subject(image, "", whole.labels, item["path"], course.at_model_size(whole, model).masks)  # masks alike


def mask_items(args, model, default_n: int, start: int = 0) -> list[dict]:
    if args.data:
        return with_masks(args.data)
    world = shapes.world_of(model.training, default=shapes.WORLD)
    return toy_scene_items(args.n or default_n, min_objects=2, start=start, world=world)


# ------------------------------------------------------------------------------------------- localization
class Localization(Experiment):
    """Table 3: one self-attention pass per image, then ours (automatic N), the paper's recipe, the authors'
    code's preset, each of our changes turned back, and the k-means and FINCH baselines at fixed k; Hungarian
    matching against the ground-truth masks: IoU, recall, precision (x 100, as the paper) and the count error."""

    def __init__(self):
        super().__init__(name="localization", paper="ConceptExpress Table 3 (unsupervised concept localization)",
                         settings_keys=("n_max",),
                         paper_table={k: dict(iou=a, recall=b, precision=c) for k, (a, b, c) in LOCALIZATION_PAPER.items()})

    def add_arguments(self, p):
        p.add_argument("--n", type=int, default=None, help="toy scenes with 2-3 objects (default 120)")
        p.add_argument("--n-max", type=int, default=10, help="the paper's N_max")

    def open(self, args, device):
        return dict(model=load_model(args, device), n_max=args.n_max)

    def items(self, ctx, args):
        return mask_items(args, ctx["model"], 120)

    def run_item(self, ctx, item, seed, files):
        s = scene_of(ctx["model"], item)
        found = compare(ctx["model"], [s], n_max=ctx["n_max"])
        return dict(objects=len(s.masks), methods={r["method"]: dict(iou=r["iou"], recall=r["recall"],
                                                                      precision=r["precision"],
                                                                      count_error=r["count_error"])
                                                     for r in found})

    def table(self, rows, args):
        lines = []
        for name in rows[0]["methods"]:
            rs = [r["methods"][name] for r in rows]
            lines.append(dict(method=name, items=len(rows), iou=100 * float(np.mean([r["iou"] for r in rs])),
                              recall=100 * float(np.mean([r["recall"] for r in rs])),
                              precision=100 * float(np.mean([r["precision"] for r in rs])),
                              count_exact=float(np.mean([r["count_error"] == 0 for r in rs]))))
        return lines

    def figure(self, rows, table, path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(11, 3.6))
        x = np.arange(len(table))
        for k, score in enumerate(("iou", "recall", "precision")):
            ax.bar(x + (k - 1) * 0.27, [line[score] for line in table], 0.27, label=score)
        ax.set_xticks(x, [line["method"] for line in table], rotation=60, fontsize=7)
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7)
        ax.set_title(f"Concept localization, {len(rows)} images")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return True


# ----------------------------------------------------------------------------------------- concept-tokens
TOKEN_METHODS = {"BaS-dagger": dict(split_merge=False, align=False, joint=False), "ConceptExpress": dict()}
TOKENS_PAPER = {"BaS-dagger (CLIP, D1)": dict(sim_i=0.627, sim_c=0.773, acc_1=0.174, acc_3=0.282),
                "ConceptExpress (CLIP, D1)": dict(sim_i=0.689, sim_c=0.784, acc_1=0.263, acc_3=0.385)}


class ConceptTokens(Experiment):
    """Table 1: per image, the concepts are its ground-truth masks (SAM's stand-in on the toy world; the
    paper localizes first), each with its mean self-attention distribution; one token per concept is learned
    by ConceptExpress and by Break-A-Scene-dagger (`--token-steps`, 500 as the paper), each token generates
    `--gen` images from "a <c_i>" and the composed prompt `--gen` more. SIM^I / SIM^C / ACC^1 / ACC^3 in the
    CLIP's image features (`--clip`; the paper also DINO) over the whole set (ACC's prototypes are every
    concept of every image), from the generations saved per item; on the toy world also the oracle's presence
    of each concept's object in its token's generations."""

    def __init__(self):
        super().__init__(name="concept-tokens", paper="ConceptExpress Table 1 (concept tokens: SIM and ACC)",
                         settings_keys=("token_steps", "gen", "gen_steps", "clip"), paper_table=TOKENS_PAPER)

    def add_arguments(self, p):
        p.add_argument("--n", type=int, default=None, help="toy scenes with 2-3 objects (default 20)")
        p.add_argument("--token-steps", type=int, default=500)
        p.add_argument("--gen", type=int, default=8, help="generations per prompt (the paper: 8)")
        p.add_argument("--gen-steps", type=int, default=25)
        p.add_argument("--clip", default="toy-clip", help="image features for the scores (real: e.g. "
                       "openai/clip-vit-base-patch32)")

    def open(self, args, device):
        model = load_model(args, device)
        if model.kind != "sd":             # refused here, before any item runs (learn_tokens refuses too)
            raise SystemExit(f"concept-tokens learns tokens on SD 1.x/2.x-family models (one text encoder); "
                             f"{args.model} is {model.kind}: use an SD 1.x/2.x checkpoint (the paper's is "
                             f"stabilityai/stable-diffusion-2-1-base) or the embedded toy-shapes")
        return dict(model=model, args=args)

    def items(self, ctx, args):
        return mask_items(args, ctx["model"], 20, start=300)          # held-out scenes from 300: apart from localization's

    def run_item(self, ctx, item, seed, files):
        model, args = ctx["model"], ctx["args"]
        s = scene_of(model, item)
        masks = np.stack(s.masks)
        concepts = concepts_from_masks(model, s.image, masks)
        to_pil(to_tensor(s.image))[0].save(files / "source.png")
        np.savez_compressed(files / "masks.npz", masks=masks)
        row = dict(labels=list(s.labels), toy=model.tier == "toy", methods={})
        for name, kw in TOKEN_METHODS.items():
            learned = express.learn_tokens(model, s.image, concepts, steps=args.token_steps, seed=seed,
                                           progress=False, **kw)
            m2 = learned.apply(model)
            present = []
            for i, token in enumerate(learned.tokens):
                gens = self.generate(m2, f"a {token}", 100 * seed, args)
                self.save(files / name, f"concept{i}", gens)
                if model.tier == "toy":
                    present += [bool(oracle.is_present(im, s.labels[i])) for im in gens]
            self.save(files / name, "composed", self.generate(m2, "a " + " and a ".join(learned.tokens), 100 * seed + 50, args))
            row["methods"][name] = dict(present=float(np.mean(present)) if present else None)
        return row

    @staticmethod
    def generate(model, prompt, seed, args) -> torch.Tensor:
        """`--gen` images from seeds seed, seed + 1, ... (every token of an item the same seeds)."""
        return torch.cat([to_tensor(model.generate(prompt, steps=args.gen_steps, guidance=5.0, seed=seed + k))
                          for k in range(args.gen)])

    @staticmethod
    def save(folder: Path, name: str, images: torch.Tensor):
        folder.mkdir(parents=True, exist_ok=True)
        for k, im in enumerate(to_pil(images)):
            im.save(folder / f"{name}_{k}.png")

    def figure(self, rows, table, path):
        return bar_figure(table, ("sim_i", "sim_c", "acc_1", "acc_3"), path,
                          f"Table 1: concept tokens, {len(rows)} images", (0, 1))

    def table(self, rows, args):
        import conceptlab
        from PIL import Image

        clip = conceptlab.load_clip(args.clip)
        out = Path(args.out) / "items"
        read = lambda p: to_tensor(np.asarray(Image.open(p).convert("RGB")))              # noqa: E731
        lines = []
        for name in TOKEN_METHODS:
            sources, per_concept, composed, labels = [], [], [], []
            for r in rows:
                folder = out / r["id"]
                masks = np.load(folder / "masks.npz")["masks"]
                sources.append((read(folder / "source.png"), masks))
                per_concept.append([torch.cat([read(folder / name / f"concept{i}_{k}.png") for k in range(args.gen)])
                                    for i in range(len(masks))])
                composed.append(torch.cat([read(folder / name / f"composed_{k}.png") for k in range(args.gen)]))
                labels.append(r["labels"])
            scores = metrics.concept_scores(clip, sources, per_concept, composed, labels)
            line = dict(method=name, items=len(rows), **{k: float(v) for k, v in scores.items()})
            if rows[0]["toy"]:          # pooled over every generation (each concept has --gen of them)
                weights = [len(r["labels"]) for r in rows]
                line["present"] = float(np.average([r["methods"][name]["present"] for r in rows], weights=weights))
            lines.append(line)
        return lines
