"""The localization benchmark (ConceptExpress Table 3 analog) on scenes with ground-truth masks: our method
with automatic N against k-means and FINCH with a fixed number of clusters, scored by metrics.match_masks."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import metrics
from ..hooks import resize_grid
from ..images import to_tensor
from .cluster import finch_k, kmeans
from .localize import AUTHORS, PAPER_RECIPE, aggregate, end_of_text_filter, localize, record_attention


def label_masks(labels: np.ndarray, grid: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Cluster labels (n,) on `grid` -> (k, H, W) bool masks at image `size` (nearest upsampling)."""
    k = int(labels.max()) + 1
    m = torch.from_numpy(np.stack([(labels == c).reshape(grid) for c in range(k)])).float()[:, None]
    return F.interpolate(m, size=size, mode="nearest")[:, 0].numpy() > 0.5


def object_filter(truth: np.ndarray, grid: tuple[int, int]):
    """A ground-truth stand-in for the end-of-text filter: keep a pre-cluster when most of it lies on objects."""
    on = resize_grid(torch.from_numpy(np.any(truth, 0)).float(), grid).flatten().numpy()
    return lambda labels: np.array([on[labels == c].mean() > 0.5 for c in range(int(labels.max()) + 1)])


def compare(model, scenes, ks=(2, 3, 4, 5, 6, 7), n_max: int = 10, seed: int = 0) -> list[dict]:
    """One row per (scene, method): iou, recall, precision, count_error (see metrics.match_masks), n_objects.
    Methods: "ours" (automatic N, localize's defaults); "ours, paper's recipe" (PAPER_RECIPE: the phases as
    the paper writes them); "the authors' code" (localize's AUTHORS preset); one row per default turned back to the paper's ("ours, no instance split",
    "ours, filter as eq. 5", "ours, delta x1"); "ours, object filter" (ground truth in place of the
    end-of-text filter: what the filter costs); "k-means k", "FINCH k"; "k-means k, filtered", "FINCH k, filtered"
    (the same clusters through ours' end-of-text filter, as the paper compares them: "after clustering, we apply
    the proposed filtering method for fair comparison"; none kept: no mask)."""
    rows = []
    for i, s in enumerate(scenes):
        truth = np.stack(s.masks)
        x = to_tensor(s.image, model.image_size)
        size = tuple(x.shape[-2:])
        loc = localize(model, x, n_max)                       # one UNet pass; the other rows redo phases 3-5
        a, grid = loc.attention, loc.grid
        found = {"ours": loc.masks(),
                 "ours, paper's recipe": loc.redo(**PAPER_RECIPE).masks(),
                 "the authors' code": localize(model, x, n_max, **AUTHORS).masks(),   # unrenormalized: a new pass
                 "ours, no instance split": loc.redo(instances=False).masks(),
                 "ours, filter as eq. 5": loc.redo(eot_scale="linear", eot_threshold="mean").masks(),
                 "ours, delta x1": loc.redo(delta_factor=1.0).masks(),
                 "ours, object filter": loc.redo(keep=object_filter(truth, grid)).masks()}
        for k in ks:
            for name, labels in ((f"k-means {k}", kmeans(a, k, seed)), (f"FINCH {k}", finch_k(a, k))):
                masks = label_masks(labels, grid, size)
                found[name] = masks
                # the paper's protocol (Sec. 4.5, Table 3): "after clustering, we apply the proposed filtering method"
                found[f"{name}, filtered"] = masks[end_of_text_filter(labels, loc.eot, loc.settings["eot_threshold"])[0]]
        for name, masks in found.items():
            rows.append(dict(scene=i, method=name, n_objects=len(s.labels), **metrics.match_masks(masks, truth)))
    return rows


def truth_on_grid(masks: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Ground-truth object masks (G, H, W) -> (n,) object index of every grid cell (-1: background), a cell
    belonging to the object that covers most of it (area averaging), background when none covers half."""
    cover = resize_grid(torch.from_numpy(np.asarray(masks)).float(), grid)
    best, idx = cover.reshape(len(masks), -1).max(0)
    return np.where(best.numpy() >= 0.5, idx.numpy(), -1)


def purity(labels: np.ndarray, truth: np.ndarray) -> float:
    """Mean over clusters of the share of its cells that belong to its majority truth label (background
    counts as a label): 1 when no cluster mixes two objects or an object with background."""
    return float(np.mean([np.bincount(truth[labels == c] + 1).max() / (labels == c).sum()
                          for c in np.unique(labels)]))


def object_separation(attention: torch.Tensor, truth: np.ndarray) -> tuple[float, float]:
    """Mean symmetric KL between the attention rows of two cells of the same object, and of two different
    objects: self-attention groups an object's pixels when the first is much smaller."""
    from .cluster import symmetric_kl

    on = truth >= 0
    d = symmetric_kl(attention[torch.from_numpy(on)]).numpy()
    t = truth[on]
    same = t[:, None] == t[None, :]
    np.fill_diagonal(same, False)
    return float(d[same].mean()), float(d[t[:, None] != t[None, :]].mean())


def structure(loc, masks: np.ndarray) -> dict:
    """What ConceptExpress relies on, read off one localization against the scene's ground-truth masks (G, H, W):
    within / across (object_separation: self-attention groups an object's cells when within < across), the
    pre-clusters' purity, and on_objects, each concept's share of cells that lie on some object."""
    truth = truth_on_grid(np.asarray(masks), loc.grid)
    within, across = object_separation(loc.attention, truth)
    on_objects = [float((c.grid_mask.flatten() & (truth >= 0)).sum() / c.grid_mask.sum()) for c in loc.concepts]
    return dict(within=within, across=across, purity=purity(loc.pre_labels, truth), on_objects=on_objects)


def structure_rates(rows: list[dict]) -> dict:
    """Over `structure` rows: separated (share of scenes with within < across), mean purity, and on_objects (share
    of concepts lying mostly, > 0.5, on objects)."""
    shares = [v for r in rows for v in r["on_objects"]]
    return dict(scenes=len(rows), separated=float(np.mean([r["within"] < r["across"] for r in rows])),
                purity=float(np.mean([r["purity"] for r in rows])), concepts=len(shares),
                on_objects=float(np.mean([v > 0.5 for v in shares])))


def concepts_from_masks(model, image, masks) -> list:
    """Ground-truth masks (N, H, W) -> Concepts whose distribution f_i is the mean aggregated self-attention
    over the mask's cells (what `localize` gives its own concepts): token learning on known concepts."""
    from .localize import Concept

    x = to_tensor(image, model.image_size)
    a, grid, _ = aggregate(record_attention(model, x))
    out = []
    for m in np.asarray(masks, bool):
        cover = resize_grid(torch.from_numpy(m).float(), grid).flatten()
        cells = cover >= 0.5
        if not cells.any():                                     # a tiny object: its most covered cell
            cells = cover == cover.max()
        out.append(Concept(m, cells.numpy().reshape(grid), a[cells].mean(0), ["ground-truth mask"]))
    return out
