"""Measurements shared by notebooks and benchmarks, so that a number in the book and in a note is
computed by one piece of code."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import hooks, inversion


def share_inside(attention: torch.Tensor, mask) -> float:
    """Share of an attention map's mass inside a mask: sum(A * m) / sum(A).
    attention: (h, w), non-negative; mask: (H, W) bool or [0, 1], area-averaged down to (h, w)."""
    m = torch.as_tensor(mask, dtype=torch.float32)
    if m.ndim != 2 or attention.ndim != 2:
        raise ValueError(f"attention and mask must be 2-D maps, got {tuple(attention.shape)} and {tuple(m.shape)}")
    a = torch.as_tensor(attention).float()
    if not torch.isfinite(a).all() or (a < 0).any():
        raise ValueError("attention must be a non-negative finite map (probabilities); got negative or NaN values")
    if a.sum() <= 0:
        raise ValueError("attention is zero everywhere: there is no mass to share")
    if m.shape[0] < a.shape[0] or m.shape[1] < a.shape[1]:
        raise ValueError(f"the mask {tuple(m.shape)} is smaller than the attention map {tuple(a.shape)}: give the "
                         "mask at the image's size")
    m = F.interpolate(m[None, None], size=tuple(a.shape), mode="area")[0, 0]
    return float((a * m).sum() / a.sum().clamp_min(1e-12))


def word_attention_in_masks(model, scene, steps: int = 50) -> dict[str, float]:
    """Invert a scene with its caption while recording cross-attention (running mean over steps) at the
    finest cross-attention layers (16x16 on toy-shapes), then for each object's colour and shape word
    the share of its attention inside that object's ground-truth mask: {"red circle/circle": 0.8, ...}."""
    with hooks.AttentionRecorder(model, kind="cross", running_mean=True, prompt=scene.caption) as rec:
        inversion.invert(model, scene.image, scene.caption, steps=steps)
    finest = rec.cache.finest("cross")
    layers = [n for n in rec.cache.layers("cross") if rec.cache.grids[n] == finest]
    out = {}
    for label, mask in zip(scene.labels, scene.masks):
        for word in label.split():
            out[f"{label}/{word}"] = share_inside(rec.cache.token_map(word, layers=layers), mask)
    return out


@torch.no_grad()
def step_accuracy(clip, model, steps: list, candidates: list[str], target: int, image: int = 0) -> torch.Tensor:
    """ScalingConcept Fig. 2b: decode each recorded step's predicted x0 (image `image` of its batch) and
    zero-shot classify it among `candidates`; 1.0 where `candidates[target]` wins, else 0.0: (n_steps,).
    Average over inputs to get the accuracy curve."""
    if not steps:
        raise ValueError("no steps given: record them with hooks.TrajectoryRecorder")
    x = model.decode(torch.cat([s.x0[image:image + 1] for s in steps]))
    return (clip.zero_shot(x, candidates).argmax(-1) == target).float()


def _pair(a, b, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Two image batches of one shape (B, 3, H, W), or one image against a batch."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.ndim == 3:
        a = a[None]
    if b.ndim == 3:
        b = b[None]
    if a.ndim != 4 or b.ndim != 4 or a.shape[1:] != b.shape[1:] or (len(a) != len(b) and 1 not in (len(a), len(b))):
        raise ValueError(f"{what} compares images of one shape (B, 3, H, W), got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}: resize or batch them alike")
    return torch.broadcast_tensors(a.float(), b.float())


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image of two batches (B, 3, H, W) in [-1, 1] (peak-to-peak 2): (B,)."""
    a, b = _pair(a, b, "psnr")
    return 10 * torch.log10(4 / ((a - b) ** 2).mean((1, 2, 3)))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM per image (Wang et al. 2004, scikit-image's implementation, 7x7 window): (B,)."""
    from skimage.metrics import structural_similarity

    a, b = _pair(a, b, "ssim")
    if min(a.shape[-2:]) < 7:
        raise ValueError(f"ssim needs images of at least 7x7 pixels (its window), got {tuple(a.shape[-2:])}")
    a, b = (x.detach().float().cpu().permute(0, 2, 3, 1).numpy() for x in (a, b))
    return torch.tensor([structural_similarity(x, y, channel_axis=-1, data_range=2.0) for x, y in zip(a, b)])


def frechet_distance(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """FID's formula on any features (N, D): |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) (Heusel et al. 2017).
    conceptlab computes it in toy-clip's image-feature space (not Inception's) on the toy world."""
    import numpy as np
    from scipy import linalg

    a, b = (torch.as_tensor(f).double().cpu().numpy() for f in (f1, f2))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"the Frechet distance compares two sets of features (N, D) of one width D, got "
                         f"{a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("the Frechet distance needs at least two feature vectors on each side")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def edit_quality(clip, edited: torch.Tensor, inputs: torch.Tensor, prompts: list[str], reference: torch.Tensor,
                 lpips=None) -> dict:
    """The paper's table columns, toy edition: FID of the edited set against reference image features
    (in the CLIP's feature space), mean CLIP score of each edit with its concept prompt, and fidelity to
    the input (mean PSNR, SSIM; and mean LPIPS, the paper's fidelity, when an `lpips` from
    conceptlab.perceptual.load_lpips is given). edited, inputs: (B, 3, H, W) in [-1, 1]; reference: (M, D)."""
    scores = dict(fid=frechet_distance(clip.image_features(edited), reference),
                  clip=float(clip.score(edited, prompts).mean()),
                  psnr=float(psnr(edited, inputs).mean()), ssim=float(ssim(edited, inputs).mean()))
    if lpips is not None:
        scores["lpips"] = float(lpips.distance(edited, inputs).mean())
    return scores


def hungarian(pred, truth) -> tuple:
    """Match predicted masks (P, H, W) to true masks (G, H, W), bool, maximizing the total IoU (scipy's
    linear_sum_assignment). Returns (pred index, truth index, IoU) arrays of the matched pairs."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    p, g = np.asarray(pred, bool), np.asarray(truth, bool)
    if p.ndim != 3 or g.ndim != 3 or (len(p) and p.shape[1:] != g.shape[1:]):
        raise ValueError(f"pred and truth must be (N, H, W) mask stacks of one size, got {p.shape} and {g.shape}")
    if len(g) == 0:
        raise ValueError("truth holds no mask: give at least one ground-truth object")
    if len(p) == 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    pf, gf = p.reshape(len(p), -1).astype(np.float64), g.reshape(len(g), -1).astype(np.float64)
    inter = pf @ gf.T
    union = pf.sum(1)[:, None] + gf.sum(1)[None, :] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)              # (P, G)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return rows, cols, iou[rows, cols]


def match_masks(pred, truth, threshold: float = 0.5) -> dict:
    """Localization scores of predicted masks against ground-truth masks (ConceptExpress Table 3), after the
    Hungarian matching of `hungarian`. pred (P, H, W), truth (G, H, W): bool. Returns
      iou: mean over true objects of the IoU of the predicted mask matched to it (0 when none is),
      recall: share of true objects matched with IoU >= threshold (the concepts discovered),
      precision: share of predicted masks matched with IoU >= threshold (the predictions that are concepts),
      count_error: P - G.
    The paper's Appendix B is not in our copy; these are our definitions, the usual ones for this protocol."""
    _, _, matched = hungarian(pred, truth)
    n_pred, n_true = len(pred), len(truth)
    if n_pred == 0:
        return dict(iou=0.0, recall=0.0, precision=0.0, count_error=-n_true)
    hits = int((matched >= threshold).sum())
    return dict(iou=float(matched.sum() / n_true), recall=hits / n_true, precision=hits / n_pred,
                count_error=n_pred - n_true)


def masked_region(image: torch.Tensor, mask) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1] and a mask (H, W) -> the region alone, black elsewhere (the stand-in for a SAM
    segment of the concept)."""
    m = torch.as_tensor(mask, dtype=torch.bool)
    if image.ndim != 4 or m.shape != image.shape[-2:]:
        raise ValueError(f"masked_region takes an image (1, 3, H, W) and a mask (H, W) of its size, got "
                         f"{tuple(image.shape)} and {tuple(m.shape)}")
    return torch.where(m, image, torch.full_like(image, -1.0))


def concept_scores(clip, sources: list, per_concept: list, composed: list, labels: list | None = None,
                   regions: list | None = None) -> dict:
    """ConceptExpress Table 1 on the image features of a Clip (toy-clip, CLIP) or a Dino (conceptlab.load_dino).
    sources: per scene (image (1, 3, H, W), masks (N, H, W)); per_concept: per scene, per concept, the images
    generated from "a photo of <c_i>" (k, 3, H, W); composed: per scene, the images generated from the
    prompt that names every concept (k, 3, H, W).
      sim_i: mean cosine between a concept's masked source region and each of its generations;
      sim_c: mean cosine between the source image and each composed generation;
      acc_1, acc_3: a prototype classifier over the masked regions of *all* concepts of all scenes: the
        share of generations whose own concept is the nearest (among the 3 nearest) prototype.
    labels: per scene, per concept, what it is (e.g. "red circle"); when given, also acc_1_label and
      acc_3_label: the same classifier over one prototype per label (the mean feature of the concepts that
      carry it), a hit when the generation's own label is the nearest (among the 3 nearest). On a world with
      repeated objects (toy-shapes: 20 scenes hold 50 concepts but 12 labels) two red circles of two scenes
      differ only in place, size and background, and acc_1 asks to tell them apart by those alone.
    regions: per scene, per concept, the image (1, 3, H, W) that stands for the concept's region in sim_i and
      the classifier, instead of masked_region(source, mask) (the paper's SAM segment on black). A feature
      extractor that never saw black backgrounds (toy-clip) misreads masked regions: on toy-shapes, pass each
      object alone on its own background (shapes.Scene.alone), which the world knows exactly."""
    if not (len(sources) == len(per_concept) == len(composed)) or not sources:
        raise ValueError("give one entry per scene in sources, per_concept and composed")
    if labels is not None and [len(x) for x in labels] != [len(m) for _, m in sources]:
        raise ValueError("labels: give one label per concept of every scene")
    if regions is not None and [len(x) for x in regions] != [len(m) for _, m in sources]:
        raise ValueError("regions: give one image (1, 3, H, W) per concept of every scene")
    if regions is None:
        regions = [[masked_region(image, m) for m in masks] for image, masks in sources]
    protos = torch.cat([clip.image_features(r) for scene in regions for r in scene])  # (P, D)
    flat_labels = [x for scene in labels for x in scene] if labels is not None else None
    if flat_labels is not None:
        names = sorted(set(flat_labels))
        label_of = torch.tensor([names.index(x) for x in flat_labels])               # (P,)
        classes = torch.stack([protos[label_of == c].mean(0) for c in range(len(names))])
        classes = classes / classes.norm(dim=1, keepdim=True)                        # (L, D)
    sim_i, sim_c, top1, top3, lab1, lab3, p = [], [], [], [], [], [], 0
    for (image, masks), gens, comp in zip(sources, per_concept, composed):
        if len(gens) != len(masks):
            raise ValueError(f"{len(masks)} concepts but generations for {len(gens)}")
        for g in gens:
            f = clip.image_features(g)                                               # (k, D)
            sim_i += (f @ protos[p]).tolist()
            rank = (f @ protos.T).argsort(dim=1, descending=True)
            top1 += (rank[:, 0] == p).tolist()
            top3 += (rank[:, :3] == p).any(1).tolist()
            if flat_labels is not None:
                rank = (f @ classes.T).argsort(dim=1, descending=True)
                lab1 += (rank[:, 0] == label_of[p]).tolist()
                lab3 += (rank[:, :3] == label_of[p]).any(1).tolist()
            p += 1
        sim_c += (clip.image_features(comp) @ clip.image_features(image)[0]).tolist()
    mean = lambda v: float(sum(v) / len(v))                                           # noqa: E731
    scores = dict(sim_i=mean(sim_i), sim_c=mean(sim_c), acc_1=mean(top1), acc_3=mean(top3))
    if flat_labels is not None:
        scores.update(acc_1_label=mean(lab1), acc_3_label=mean(lab3))
    return scores
