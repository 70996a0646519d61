"""ConceptExpress, part 1: find the concepts of one image without supervision (Hao et al., ECCV 2024, Sec. 3.2).

    loc = conceptlab.express.localize(model, image, n_max=10)
    loc.concepts[i].mask          # (H, W) bool on the image
    loc.concepts[i].distribution  # (h*w,) its mean self-attention distribution f_i
    loc.concepts[i].history       # what each phase did to it
    loc.redo(**PAPER_RECIPE)      # phases 3-5 again with other settings, no new UNet pass

The phases, each a function here so that a notebook can run and picture them one by one:
1. `record_attention`: one UNet pass on the clean latent, t = 0, prompt "" (no noise added).
2. `aggregate`: every self-attention layer, head-averaged, brought to the finest grid and weighted by its
   resolution (eq. 3-4) -> one distribution over pixels per pixel, A (n, n), n = h*w.
3. `pre_cluster`: FINCH under symmetric KL on all pixels; the level with the fewest clusters still >= N_max;
   delta = the largest link that level used. Then `split_instances`: every pre-cluster cut into its
   4-connected pieces (ours; see below).
4. `end_of_text_filter`: keep a cluster when the end-of-text token's cross-attention inside it beats a
   threshold (eq. 5: the image mean).
5. `post_cluster`: FINCH on the kept clusters' mean distributions with links cut above delta or between
   masks that do not touch (4-connectivity); the last level gives N automatically.

Our defaults differ from the paper's recipe in three documented places, each measured on toy-shapes by
benchmarks/express_bench.py (ablation rows), and `PAPER_RECIPE` restores all three:
- instances=True: a pre-cluster whose pixels lie in two places (two same-coloured objects attend alike)
  is cut into its 4-connected pieces before filtering, so that one piece is one instance;
- eot_scale="log", eot_threshold="otsu": the end-of-text map is peaked (one object takes most of it), so
  eq. 5's mean, on the attention itself, drops every object but the brightest; on log-attention with Otsu's
  threshold (scikit-image) the filter keeps each object's pieces;
- delta_factor=5: post-clustering's cut at delta (the paper's reading) leaves the pieces of one object apart
  on toy-shapes; 5 delta joins them and still cuts the longest links. Toy-shapes has no touching objects, so
  what the cut must do there (keep touching objects apart) is not measured here.

Where the authors' code crashes we go on and say what happened in `Localization.notes` (see each function).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..checks import as_int
from ..hooks import AttentionCache, AttentionRecorder, attention_layers, selects, unet_of
from ..images import one_image, to_tensor
from .cluster import LINKINGS, Level, authors_kl, check_distributions, finch, symmetric_kl

FLAT_IMAGE_STD = 0.02        # below it (pixels in [-1, 1]) an image holds no object to find
PAPER_RECIPE = dict(instances=False, eot_scale="linear", eot_threshold="mean", delta_factor=1.0)
"""localize(model, image, **PAPER_RECIPE): the paper's phases as written (see the module docstring)."""
AUTHORS = dict(PAPER_RECIPE, renormalize=False, linking="authors")
"""localize(model, image, **AUTHORS): the ConceptExpress code (train.py and clustering/finch.py @db1dc61):
the paper's recipe, the layers not renormalized after upsampling (see `aggregate`), and their FINCH
(`cluster.authors_partition`): first neighbours chosen before the constraints, sibling links judged alone,
their delta (the largest distance times (A+I)(A+I)^T's count; none when the first level is chosen), their
end of the hierarchy, and concepts' distributions the plain mean of their pre-clusters' means. Where their
code crashes, this goes on as `localize` does and says so in `notes`."""
REDO_SETTINGS = ("n_max", "delta_from", "instances", "eot_scale", "eot_threshold", "delta_factor", "linking")
"""The settings of phases 3-5, which `Localization.redo` can change without a new UNet pass."""


@dataclass
class Concept:
    """One concept found in the image. mask: (H, W) bool at image size; grid_mask: (h, w) bool on the
    attention grid; distribution: (h*w,) its mean self-attention distribution f_i; history: one line per phase."""
    mask: np.ndarray
    grid_mask: np.ndarray
    distribution: torch.Tensor
    history: list[str] = field(default_factory=list)


@dataclass
class Localization:
    """Everything localize() saw. grid: (h, w) of the attention; attention: (n, n) aggregated rows;
    levels: every FINCH level of pre-clustering; chosen: the index of the level used; pre_labels: (n,) its
    clusters; pieces: (n,) those cut into 4-connected pieces (instances=True; else pre_labels);
    delta: the chosen level's largest link (before delta_factor); eot: (n,) end-of-text map in [0, 1];
    kept: (k,) bool per piece; post_labels: (n,) concept of each pixel, -1 where filtered out;
    concepts: the result; notes: what went differently from the paper's path;
    eot_attention: (n,) the end-of-text attention before normalization, and settings: the phase 3-5
    settings used (both set by `localize`; `redo` needs them)."""
    image: torch.Tensor
    grid: tuple[int, int]
    attention: torch.Tensor
    levels: list[Level]
    chosen: int
    pre_labels: np.ndarray
    pieces: np.ndarray
    delta: float
    eot: torch.Tensor
    kept: np.ndarray
    post_labels: np.ndarray
    concepts: list[Concept]
    notes: list[str]
    eot_attention: torch.Tensor | None = None
    settings: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.concepts)

    def masks(self) -> np.ndarray:
        """(N, H, W) bool: every concept's mask at image size."""
        return np.stack([c.mask for c in self.concepts]) if self.concepts else np.zeros((0, *self.image.shape[-2:]), bool)

    def redo(self, keep=None, **changes) -> "Localization":
        """Phases 3-5 again with some settings changed, from the attention this localization holds: no new
        UNet pass. `loc.redo(**PAPER_RECIPE)` is `localize(model, image, **PAPER_RECIPE)` at the cost of the
        clustering alone. changes: any of REDO_SETTINGS; keep: see `find_concepts`."""
        unknown = sorted(set(changes) - set(REDO_SETTINGS))
        if unknown:
            raise ValueError(f"redo changes only {', '.join(REDO_SETTINGS)}; {', '.join(unknown)} need a new UNet "
                             f"pass: call localize(model, image, ...) again")
        if self.eot_attention is None or not self.settings:
            raise ValueError("this Localization was not made by localize (no end-of-text attention or settings kept): "
                             "redo needs one from localize(model, image)")
        return phases_3_to_5(self.attention, self.grid, self.eot_attention, self.image, {**self.settings, **changes}, keep)


# ------------------------------------------------------------------------------------------- phase 1
@torch.no_grad()
def record_attention(model, image, t: int = 0) -> AttentionCache:
    """One UNet pass on the clean latent of `image` at timestep t (the paper: 0) with the null prompt ""
    and no noise added (Sec. 3.2): the self- and cross-attention of every layer, heads averaged."""
    t = as_int(t, "t", "the timestep of the UNet pass; the paper's is 0", 0, len(model.alphas_cumprod) - 1)
    x = to_tensor(image, model.image_size)
    z0 = model.encode(x)
    with AttentionRecorder(model, kind="both", heads="mean") as rec:
        model.eps(z0, t, model.null())
    return rec.cache


# ------------------------------------------------------------------------------------------- phase 2
def upsample_rows(a: torch.Tensor, grid: tuple[int, int], size: tuple[int, int], renormalize: bool) -> torch.Tensor:
    """A self-attention map (q, q) on `grid` -> (n, n) on `size`: the key axis by bilinear interpolation
    (then rows renormalized to sum 1 when `renormalize`, as DiffSeg does), the query axis by repetition."""
    (h, w), (H, W) = grid, size
    if (h, w) == (H, W):
        return a
    keys = F.interpolate(a.reshape(-1, 1, h, w), size=(H, W), mode="bilinear", align_corners=False).reshape(h * w, H * W)
    if renormalize:
        keys = keys / keys.sum(1, keepdim=True)
    rows = F.interpolate(keys.T.reshape(-1, 1, h, w), size=(H, W), mode="nearest")   # repeat each query
    return rows.reshape(H * W, H * W).T


def aggregate(cache: AttentionCache, renormalize: bool = True, layers=None) -> tuple[torch.Tensor, tuple[int, int], dict]:
    """Eq. 3-4: A = sum_l w_l up(A_l), w_l proportional to the layer's side (res_l / res_finest), weights
    normalized to sum 1, then every row renormalized to sum 1.

    renormalize=True (our default, DiffSeg's choice): each upsampled layer's rows are renormalized before
    weighting, so w_l is the layer's real share. renormalize=False is the official ConceptExpress code:
    bilinear upsampling multiplies a row's mass by (res_finest / res_l)^2, so the coarse layers dominate
    (a 16x16 layer's rows weigh 16x a 64x64 layer's) despite their smaller w_l.
    Returns (A (n, n) fp32, grid (h, w), {layer: dict(grid, weight, share)}) where share is the layer's
    fraction of the total mass in A before the final renormalization."""
    layers = [n for n in cache.layers("self") if selects(layers, n)]
    grid = cache.finest("self")
    side = lambda g: (g[0] * g[1]) ** 0.5                                       # noqa: E731
    weights = torch.tensor([side(cache.grids[n]) / side(grid) for n in layers])
    weights = weights / weights.sum()
    total, info = 0.0, {}
    for name, w in zip(layers, weights):
        a = cache.maps("self", layers=[name]).mean(0).float()                   # (q, q), heads and batch done
        up = w * upsample_rows(a, cache.grids[name], grid, renormalize)
        info[name] = dict(grid=cache.grids[name], weight=float(w), mass=float(up.sum()))
        total = total + up
    mass = sum(v["mass"] for v in info.values())
    for v in info.values():
        v["share"] = v.pop("mass") / mass
    return check_distributions(total, "aggregated attention"), grid, info


# ------------------------------------------------------------------------------------------- phase 3
def check_n_max(n_max) -> None:
    if isinstance(n_max, bool) or not isinstance(n_max, (int, np.integer)) or n_max < 1:
        raise ValueError(f"n_max must be a positive integer (the paper uses 10), got {n_max!r}")


def pre_cluster(attention: torch.Tensor, n_max: int = 10, delta_from: str = "chosen",
                linking: str = "first") -> tuple[list[Level], int, float, list[str]]:
    """FINCH on every pixel's distribution under symmetric KL; choose the level with the fewest clusters
    that still has >= n_max (the paper's N_max = 10). Returns (levels, chosen index, delta, notes).
    delta: "the largest linking distance used at that level" read two ways: delta_from="chosen" (default,
    the methods page's reading) takes the largest first-neighbour link that formed the chosen level; "next" the
    largest link FINCH used on the chosen level's clusters to form the next one (the scale of the links
    post-clustering makes). benchmarks/express_bench.py reports both. linking: see `cluster.finch`; with
    "authors" the level's link is their delta, and choosing FINCH's first level leaves no delta (math.inf),
    as their code keeps none for it.
    Where the official code crashes: if even FINCH's first level has fewer than n_max clusters, we take the
    first level (the finest there is); if every level stays above n_max, the last. Both are noted."""
    check_n_max(n_max)
    if delta_from not in ("chosen", "next"):
        raise ValueError(f"delta_from must be 'chosen' or 'next', got {delta_from!r}")
    levels = finch(attention, distance=authors_kl if linking == "authors" else symmetric_kl, linking=linking)
    notes = []
    if not levels:                                       # a single pixel, or nothing merged at all
        levels = [Level(np.arange(attention.shape[0]), 0.0)]
        notes.append("FINCH merged nothing: every pixel is its own pre-cluster")
    above = [i for i, lv in enumerate(levels) if lv.k >= n_max]
    if not above:
        chosen = 0
        notes.append(f"FINCH's first level already has {levels[0].k} < n_max = {n_max} clusters: using it")
    else:
        chosen = above[-1]
        if chosen == len(levels) - 1 and len(levels) > 1:
            notes.append(f"every FINCH level keeps >= n_max = {n_max} clusters: using the last ({levels[-1].k})")
    delta = levels[chosen + 1].link if delta_from == "next" and chosen + 1 < len(levels) else levels[chosen].link
    if linking == "authors" and chosen == 0 and delta_from == "chosen":
        delta = math.inf
    return levels, chosen, delta, notes


def split_instances(labels: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Cut every cluster of `labels` (n,) on `grid` (h, w) into its 4-connected pieces: (n,) new labels
    0..m-1, m >= the number of clusters. Self-attention groups pixels that look alike, so two red circles can
    share a pre-cluster; a concept of ConceptExpress is one instance, and post-clustering joins only pieces
    that touch, so a piece is where an instance can start."""
    lab = labels.reshape(grid)
    out, m = np.empty_like(lab), 0
    for c in range(int(lab.max()) + 1):
        pieces, k = ndimage.label(lab == c)                 # default structure: 4-connectivity
        out[pieces > 0] = pieces[pieces > 0] - 1 + m
        m += k
    return out.flatten()


# ------------------------------------------------------------------------------------------- phase 4
def end_of_text_index(tokenizer) -> int:
    """Position of the end-of-text token in the tokenized "" (1: after the start token). Found by the eos
    id in the unpadded ids, so a tokenizer whose padding id equals its eos id (SD 1.x) gives the same."""
    ids = tokenizer("").input_ids
    eos = tokenizer.eos_token_id
    if eos is None or eos not in ids:
        raise ValueError("the tokenizer puts no end-of-text token in '': the end-of-text filter needs one")
    return ids.index(eos)


def end_of_text_attention(cache: AttentionCache, model, grid: tuple[int, int], side: int = 16) -> torch.Tensor:
    """(n,): the end-of-text token's cross-attention for "", averaged over the `side` x `side` layers (the
    paper's 16x16; the finest cross-attention layers when the UNet has none at that size) and upsampled
    bilinearly to `grid`; not yet normalized (see `normalize_end_of_text`)."""
    layers = [n for n in cache.layers("cross") if cache.grids[n] == (side, side)] or \
             [n for n in cache.layers("cross") if cache.grids[n] == cache.finest("cross")]
    h, w = cache.grids[layers[0]]
    e = cache.maps("cross", layers=layers).mean(0)[:, end_of_text_index(model.tokenizer)].reshape(1, 1, h, w)
    return F.interpolate(e, size=grid, mode="bilinear", align_corners=False).flatten().float()


def normalize_end_of_text(e: torch.Tensor, scale: str = "linear") -> torch.Tensor:
    """The end-of-text attention (n,) -> e in [0, 1]: (scale="log") its logarithm, then min-max normalized.
    The log keeps the order of the pixels and spreads a peaked map (see `end_of_text_filter`)."""
    if scale not in ("linear", "log"):
        raise ValueError(f"scale must be 'linear' (the paper) or 'log', got {scale!r}")
    if scale == "log":
        e = torch.log(e.clamp(min=1e-12))
    return (e - e.min()) / (e.max() - e.min()).clamp(min=1e-12)


def end_of_text_map(cache: AttentionCache, model, grid: tuple[int, int], side: int = 16,
                    scale: str = "linear") -> torch.Tensor:
    """e (n,) in [0, 1]: `end_of_text_attention`, then `normalize_end_of_text` with `scale`."""
    return normalize_end_of_text(end_of_text_attention(cache, model, grid, side), scale)


def eot_threshold_of(eot: torch.Tensor, threshold: str = "otsu") -> float:
    """The value a cluster's mean end-of-text attention must beat: "mean" (eq. 5: the image mean) or
    "otsu" (Otsu's threshold of the map's histogram, scikit-image; the mean when the map is flat)."""
    from skimage.filters import threshold_otsu

    if threshold not in ("mean", "otsu"):
        raise ValueError(f"threshold must be 'mean' (eq. 5) or 'otsu', got {threshold!r}")
    e = eot.double().numpy()
    if threshold == "mean" or e.max() - e.min() < 1e-12:
        return float(e.mean())
    return float(threshold_otsu(e))


def end_of_text_filter(labels: np.ndarray, eot: torch.Tensor,
                       threshold: str = "mean") -> tuple[np.ndarray, np.ndarray, float]:
    """Eq. 5: keep cluster c when mean(e[c]) > the threshold (see `eot_threshold_of`; the paper's is the
    image mean). Returns (kept (k,) bool, inside means (k,), the threshold)."""
    k = int(labels.max()) + 1
    e = eot.double().numpy()
    inside = np.array([e[labels == c].mean() for c in range(k)])
    bar = eot_threshold_of(eot, threshold)
    return inside > bar, inside, bar


# ------------------------------------------------------------------------------------------- phase 5
def adjacency(masks: np.ndarray) -> torch.Tensor:
    """(k, h, w) bool masks -> (k, k) bool: masks i and j touch (a pixel of one is a 4-neighbour of, or is,
    a pixel of the other)."""
    cross = ndimage.generate_binary_structure(2, 1)
    grown = np.stack([ndimage.binary_dilation(m, cross) for m in masks]).reshape(len(masks), -1)
    flat = masks.reshape(len(masks), -1)
    return torch.from_numpy((grown.astype(np.float32) @ flat.T.astype(np.float32)) > 0)


def post_cluster(attention: torch.Tensor, labels: np.ndarray, kept: np.ndarray, delta: float | None,
                 grid: tuple[int, int], linking: str = "first") -> tuple[np.ndarray, list[Level]]:
    """FINCH over the kept pre-clusters' mean distributions (weighted by pixel counts), where a cluster
    links only to clusters whose masks touch and only when the distance is <= delta (None: no cut); the
    last level is the answer. linking="authors": their FINCH (`cluster.finch`), over the plain mean of the
    pre-clusters' means, as their code. Returns (concept of each kept pre-cluster (m,), the levels)."""
    ids = np.flatnonzero(kept)
    masks = np.stack([(labels == c).reshape(grid) for c in ids])
    counts = torch.tensor([m.sum() for m in masks], dtype=torch.float32)
    means = torch.stack([attention[torch.from_numpy(m.flatten())].mean(0) for m in masks])

    def touching(lab: np.ndarray) -> torch.Tensor:            # masks of the current clusters
        k = int(lab.max()) + 1
        return adjacency(np.stack([masks[lab == c].any(0) for c in range(k)]))

    authors = linking == "authors"
    levels = finch(means, distance=authors_kl if authors else symmetric_kl, allowed=touching, max_link=delta,
                   weights=None if authors else counts, linking=linking)
    return (levels[-1].labels if levels else np.arange(len(ids))), levels


# ------------------------------------------------------------------------------------------- the method
def localize(model, image, n_max: int = 10, renormalize: bool = True, t: int = 0, layers=None,
             delta_from: str = "chosen", eot_side: int = 16, instances: bool = True, eot_scale: str = "log",
             eot_threshold: str = "otsu", delta_factor: float = 5.0, linking: str = "first") -> Localization:
    """Find the concepts of `image` (PIL, uint8 (H, W, 3) array or tensor in [-1, 1]) with no supervision.
    n_max: N_max of pre-clustering (paper: 10). renormalize, layers: see `aggregate`; t: see
    `record_attention`; delta_from: see `pre_cluster`; eot_side, eot_scale: see `end_of_text_map`;
    instances, eot_threshold, delta_factor, linking: see `find_concepts`. `**PAPER_RECIPE` gives the
    paper's phases as written, `**AUTHORS` the authors' code. Returns a Localization."""
    if not hasattr(model, "unet") or not hasattr(model, "tokenizer"):
        raise TypeError("localize needs a conceptlab Model of an image pipeline: conceptlab.load('toy-shapes')")
    if not any(k == "self" for k in attention_layers(unet_of(model)).values()):
        raise ValueError("this UNet has no self-attention layers to cluster")
    check_n_max(n_max)
    x = one_image(image, model.image_size, "localize")
    if float(x.std()) < FLAT_IMAGE_STD:                  # nothing to find: the clusters would be the UNet's own
        warnings.warn(f"the image is nearly uniform (pixel std {float(x.std()):.3f} in [-1, 1]): localize will still "
                      "cluster its attention, but the concepts it returns stand for no object", stacklevel=2)
    cache = record_attention(model, x, t)
    attention, grid, _ = aggregate(cache, renormalize, layers)
    settings = dict(n_max=n_max, delta_from=delta_from, instances=instances, eot_scale=eot_scale,
                    eot_threshold=eot_threshold, delta_factor=delta_factor, linking=linking)
    return phases_3_to_5(attention, grid, end_of_text_attention(cache, model, grid, eot_side), x, settings)


def phases_3_to_5(attention: torch.Tensor, grid: tuple[int, int], eot_attention: torch.Tensor, image: torch.Tensor,
                  settings: dict, keep=None) -> Localization:
    """find_concepts on the end-of-text attention normalized with settings["eot_scale"]; the Localization
    keeps the attention and the settings (all of REDO_SETTINGS), so that it can be `redo`ne."""
    kw = dict(settings)
    eot = normalize_end_of_text(eot_attention, kw.pop("eot_scale"))
    loc = find_concepts(attention, grid, eot, image, keep=keep, **kw)
    loc.eot_attention, loc.settings = eot_attention, dict(settings)
    return loc


def find_concepts(attention: torch.Tensor, grid: tuple[int, int], eot: torch.Tensor, image: torch.Tensor,
                  n_max: int = 10, delta_from: str = "chosen", keep=None, instances: bool = True,
                  eot_threshold: str = "otsu", delta_factor: float = 5.0, linking: str = "first") -> Localization:
    """Phases 3-5 on an aggregated attention A (n, n), its grid (h, w) and an end-of-text map e (n,):
    pre-cluster, filter, post-cluster, and build the concepts (masks at the size of `image` (1, 3, H, W)).
    instances: cut pre-clusters into 4-connected pieces (`split_instances`; the paper: False);
    eot_threshold: "otsu" or "mean" (eq. 5), see `eot_threshold_of`; delta_factor: post-clustering cuts
    links longer than delta_factor * delta (the paper: 1; math.inf: adjacency alone).
    keep: replace the end-of-text filter by your own, a function (pre-cluster labels (n,)) -> (k,) bool;
    e.g. a ground-truth filter, to measure what the filter costs (benchmarks/express_bench.py).
    linking: "first" (ours) or "authors" (their FINCH and delta, see `cluster.finch` and `pre_cluster`; a
    concept's distribution is then the plain mean of its pre-clusters' means, as theirs)."""
    n = grid[0] * grid[1]
    if attention.shape != (n, n) or eot.shape != (n,):
        raise ValueError(f"on a {grid} grid the attention must be ({n}, {n}) and e ({n},), got "
                         f"{tuple(attention.shape)} and {tuple(eot.shape)}")
    if isinstance(delta_factor, bool) or not isinstance(delta_factor, (int, float)) or not delta_factor > 0:
        raise ValueError(f"delta_factor must be a positive number (the paper: 1), got {delta_factor!r}")
    if linking not in LINKINGS:
        raise ValueError(f"linking must be one of {LINKINGS} ('authors': the ConceptExpress code's FINCH), got {linking!r}")
    levels, chosen, delta, notes = pre_cluster(attention, n_max, delta_from, linking)
    labels = split_instances(levels[chosen].labels, grid) if instances else levels[chosen].labels
    what = "piece" if instances else "pre-cluster"
    kept, inside, bar = end_of_text_filter(labels, eot, eot_threshold)
    if keep is not None:
        kept = np.asarray(keep(labels), bool)
    filtered = kept.any()
    if not filtered:
        notes.append(f"no {what} passed the end-of-text filter: keeping them all")
        warnings.warn("no cluster passed the end-of-text filter (eq. 5); all pre-clusters are kept", stacklevel=2)
        kept = np.ones_like(kept)
    cut = None if math.isinf(delta_factor) else delta * delta_factor      # inf: adjacency alone
    concept_of, _ = post_cluster(attention, labels, kept, cut, grid, linking)
    ids = np.flatnonzero(kept)
    post = np.full(labels.shape, -1)
    for c, concept in zip(ids, concept_of):
        post[labels == c] = concept
    size = tuple(image.shape[-2:])
    concepts = []
    split = f", cut into {int(labels.max()) + 1} 4-connected pieces" if instances else ""
    for j in range(int(concept_of.max()) + 1):
        members = ids[concept_of == j]
        grid_mask = (post == j).reshape(grid)
        mask = F.interpolate(torch.from_numpy(grid_mask)[None, None].float(), size=size, mode="nearest")[0, 0] > 0.5
        plural = "s" if len(members) > 1 else ""
        insides = ", ".join(f"{inside[c]:.2f}" for c in members)
        history = [f"pre-clustering: FINCH level {chosen + 1} of {len(levels)} ({levels[chosen].k} clusters, "
                   f"delta {delta:.4f}){split} gave {what}{plural} {', '.join(map(str, members))}",
                   ("filter: kept by the `keep` given" if keep is not None else
                    f"end-of-text filter: kept (inside {insides} > {eot_threshold} {bar:.2f})") if filtered else
                   f"end-of-text filter: nothing passed, kept anyway (inside {insides})",
                   f"post-clustering: {len(members)} {what}{plural} merged into concept {j}"]
        if linking == "authors":                         # their f_i: the plain mean of the pre-clusters' means
            f = torch.stack([attention[torch.from_numpy(labels == c)].mean(0) for c in members]).mean(0)
        else:
            f = attention[torch.from_numpy(grid_mask.flatten())].mean(0)
        concepts.append(Concept(mask.numpy(), grid_mask, f, history))
    return Localization(image=image, grid=grid, attention=attention, levels=levels, chosen=chosen,
                        pre_labels=levels[chosen].labels, pieces=labels, delta=delta, eot=eot, kept=kept,
                        post_labels=post, concepts=concepts, notes=notes)
