"""The two clustering tools ConceptExpress builds on, written for attention distributions.

- `symmetric_kl`: all-pairs symmetric KL divergence between rows of distributions, as matrix products.
- `finch`: FINCH, the first-neighbour clustering hierarchy (Sarfraz et al., CVPR 2019), over any distance,
  with optional link constraints (ConceptExpress's delta cut and spatial adjacency).

Why FINCH is written here: the authors' package `finch-clust` (checked: 0.2.3) computes its distances
with scikit-learn's named metrics ("cosine", "euclidean") at every level, and cannot cut links; the method
needs symmetric KL between cluster means at every level and the two constraints, so the ~30 lines of the
algorithm live here on scipy's connected components.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.sparse import coo_matrix, identity
from scipy.sparse.csgraph import connected_components

EPS = 1e-8
LINKINGS = ("first", "authors")


def check_distributions(p: torch.Tensor, name: str = "p") -> torch.Tensor:
    """Rows of distributions (n, d), any float dtype -> fp32 rows that sum to 1 (NaN/inf refused)."""
    if not isinstance(p, torch.Tensor) or p.ndim != 2:
        raise ValueError(f"{name} must be a 2-D tensor (n, d) of distributions, got "
                         f"{tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__}")
    p = p.float()
    if not torch.isfinite(p).all():
        raise ValueError(f"{name} holds NaN or inf values: recompute the attention in fp32")
    if (p < 0).any():
        raise ValueError(f"{name} has negative entries: rows must be probability distributions")
    s = p.sum(1, keepdim=True)
    if (s <= 0).any():
        raise ValueError(f"{name} has an all-zero row: every row must carry some probability")
    return p / s


def symmetric_kl(p: torch.Tensor, q: torch.Tensor | None = None, eps: float = EPS) -> torch.Tensor:
    """D[i, j] = (KL(p_i || q_j) + KL(q_j || p_i)) / 2 for rows p (n, d), q (m, d) (q defaults to p) -> (n, m).

    KL(p||q) = sum_k p_k log p_k - sum_k p_k log q_k, so with log taken of (x + eps) in fp32:
        D = ( h_p[:, None] - P @ log(Q)^T + h_q[None, :] - (Q @ log(P)^T)^T ) / 2,
    two GEMMs for all pairs (one when q is p: the second product is the transpose of the first), and never
    an (n, m, d) tensor. Memory O(n m). fp16 input is computed in fp32; eps keeps zeros finite."""
    p = check_distributions(p, "p")
    same = q is None
    q = p if same else check_distributions(q, "q")
    if p.shape[1] != q.shape[1]:
        raise ValueError(f"p and q must be distributions over the same support, got {p.shape[1]} and {q.shape[1]}")
    log_p, log_q = torch.log(p + eps), torch.log(q + eps)
    h_p = (p * log_p).sum(1)                                   # negative entropies, (n,)
    h_q = h_p if same else (q * log_q).sum(1)
    d = p @ log_q.T                                            # (n, m): sum_k p_ik log q_jk
    d += d.T.clone() if same else (q @ log_p.T).T              # + sum_k q_jk log p_ik
    d.neg_().add_(h_p[:, None]).add_(h_q[None, :]).mul_(0.5)   # in place: memory stays two (n, m) matrices
    d.clamp_(min=0)                                            # rounding can leave -1e-7 on the diagonal
    if same:
        d.fill_diagonal_(0)
    return d


def authors_kl(p: torch.Tensor) -> torch.Tensor:
    """All-pairs symmetric KL of rows p (n, d) by the authors' formula (ptp_utils.kld_distance @db1dc61:
    no epsilon, (h_p - P log(P)^T) and its transpose averaged), computed in float64: (n, n) float64.
    Their float32 arithmetic cancels h_p against P log(P)^T, so near-identical rows (a uniform background)
    get distances of rounding noise and first neighbours that change with the BLAS; in float64 the
    hierarchy is reproducible, and that is what the AUTHORS presets and their parity tests compare."""
    p = check_distributions(p, "p").double()
    log_p = torch.log(p.clamp(min=1e-300))
    pq = (p * log_p).sum(1, keepdim=True) - p @ log_p.T              # (n, n): KL(p_i || p_j)
    return (pq + pq.T) / 2


@dataclass
class Level:
    """One level of the hierarchy. labels: (n,) cluster of every original point, 0..k-1;
    link: the largest link that was used to form this level (its delta): the largest first-neighbour
    distance (linking "first"), or the authors' measure (linking "authors", see `authors_partition`)."""
    labels: np.ndarray
    link: float

    @property
    def k(self) -> int:
        return int(self.labels.max()) + 1


def first_neighbour_partition(d: torch.Tensor, allowed: torch.Tensor | None = None,
                              max_link: float | None = None) -> tuple[np.ndarray, float]:
    """FINCH's one step on a distance matrix d (k, k): link i -> kappa_i = argmin_j d[i, j] (j != i, j allowed);
    i and j are together when j = kappa_i, kappa_j = i, or kappa_i = kappa_j (Sarfraz et al., eq. 1); the
    partition is the connected components. Links longer than max_link, or to no allowed neighbour, are cut.
    Returns (labels (k,), the largest link kept)."""
    k = d.shape[0]
    d = d.clone()
    d.fill_diagonal_(float("inf"))
    if allowed is not None:
        d[~allowed] = float("inf")
    dist, kappa = d.min(1)
    keep = torch.isfinite(dist)
    if max_link is not None:
        keep &= dist <= max_link
    src = torch.arange(k)[keep].numpy()
    dst = kappa[keep].numpy()
    # edges i - kappa_i; kappa_i = kappa_j needs no extra edge: both touch kappa_i in the undirected graph
    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(k, k))
    _, labels = connected_components(graph, directed=False)
    return labels, float(dist[keep].max()) if keep.any() else 0.0


def authors_partition(d: torch.Tensor, allowed: torch.Tensor | None = None,
                      max_link: float | None = None) -> tuple[np.ndarray, float]:
    """FINCH's step as the ConceptExpress code takes it (clustering/finch.py @db1dc61, book/methods.md).
    kappa_i = argmin_j d[i, j] over every j != i: the constraints are not consulted when choosing it. The
    candidate links are the off-diagonal non-zeros of (A+I)(A+I)^T, A the first-neighbour matrix: i with
    kappa_i, and siblings (kappa_i = kappa_j) among them, so a sibling pair is judged by its own distance.
    A candidate is cut when d > max_link or when `allowed` says no; the partition is what stays connected.
    Returns (labels (k,), link) where link is the largest d * (A+I)(A+I)^T over the links kept: that matrix
    counts 2 for mutual neighbours, so the authors' delta can be twice the longest link."""
    k = d.shape[0]
    d = d.double().clone()
    d.fill_diagonal_(float("inf"))
    kappa = d.argmin(1).numpy()
    d.fill_diagonal_(0)
    a = coo_matrix((np.ones(k), (np.arange(k), kappa)), shape=(k, k)).tocsr() + identity(k, format="csr")
    m = (a @ a.T).tocoo()                                                 # counts 1 or 2 off the diagonal
    rows, cols, count = m.row, m.col, m.data
    keep = rows != cols
    dist = d[torch.from_numpy(rows), torch.from_numpy(cols)].numpy()
    if max_link is not None:
        keep &= dist <= max_link
    if allowed is not None:
        keep &= allowed.numpy()[rows, cols]
    graph = coo_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=(k, k))
    _, labels = connected_components(graph, directed=False)
    return labels, float((dist * count)[keep].max()) if keep.any() else 0.0


def finch(x: torch.Tensor, distance: Callable[[torch.Tensor], torch.Tensor] = symmetric_kl,
          allowed: Callable[[np.ndarray], torch.Tensor] | None = None, max_link: float | None = None,
          weights: torch.Tensor | None = None, linking: str = "first") -> list[Level]:
    """The FINCH hierarchy of points x (n, d): every level, finest first, down to one cluster or until no
    link merges anything. Each level after the first clusters the previous level's cluster means
    (weighted by `weights` (n,) when given, e.g. pixel counts), under `distance` (default symmetric KL).
    allowed(labels) -> (k, k) bool: which clusters may link (e.g. spatially adjacent ones);
    max_link: links longer than this are cut (ConceptExpress's delta).
    linking="first" (ours): each cluster links to its nearest allowed neighbour within max_link
    (`first_neighbour_partition`). linking="authors": the ConceptExpress code's FINCH
    (`authors_partition`), which also ends its hierarchy their way: a level after the first that leaves
    one cluster is dropped, and a level that merged exactly one pair is the last."""
    if linking not in LINKINGS:
        raise ValueError(f"linking must be one of {LINKINGS} ('authors': the ConceptExpress code's FINCH), got {linking!r}")
    step = authors_partition if linking == "authors" else first_neighbour_partition
    n = x.shape[0]
    w = torch.ones(n) if weights is None else weights.float()
    labels = np.arange(n)
    levels: list[Level] = []
    while True:
        k = int(labels.max()) + 1
        if k == 1:
            break
        idx = torch.from_numpy(labels)
        sums = torch.zeros(k, x.shape[1]).index_add_(0, idx, x.float() * w[:, None])
        means = sums / torch.zeros(k).index_add_(0, idx, w)[:, None]          # (k, d) cluster means
        merged, link = step(distance(means), None if allowed is None else allowed(labels), max_link)
        k_next = int(merged.max()) + 1
        if k_next == k or (linking == "authors" and levels and k_next == 1):   # nothing merged: the top
            break
        labels = merged[labels]
        levels.append(Level(labels.copy(), link))
        if linking == "authors" and k - k_next == 1 and len(levels) > 1:       # their loop runs while > 1 merge
            break
    return levels


def finch_k(x: torch.Tensor, k: int, distance: Callable[[torch.Tensor], torch.Tensor] = symmetric_kl) -> np.ndarray:
    """FINCH with a required number of clusters (Sarfraz et al., Sec. 3.2): take the level with the fewest
    clusters still >= k, then merge the closest pair of cluster means one at a time until k remain.
    Returns labels (n,) in 0..k-1. The fixed-k baseline of ConceptExpress's Table 3."""
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"k must be between 1 and the number of points ({x.shape[0]}), got {k}")
    levels = [lv for lv in finch(x, distance) if lv.k >= k]
    labels = levels[-1].labels.copy() if levels else np.arange(x.shape[0])
    while labels.max() + 1 > k:
        ids = np.unique(labels)
        means = torch.stack([x[torch.from_numpy(labels == c)].float().mean(0) for c in ids])
        d = distance(means).double()
        d.fill_diagonal_(float("inf"))
        i, j = divmod(int(d.argmin()), len(ids))
        labels[labels == ids[j]] = ids[i]
        labels = np.unique(labels, return_inverse=True)[1]
    return labels


def kmeans(x: torch.Tensor, k: int, seed: int = 0) -> np.ndarray:
    """k-means (scipy's kmeans2, k-means++ seeding) on the rows of x (n, d): labels (n,). The other fixed-k
    baseline of Table 3 (Euclidean, as k-means is)."""
    from scipy.cluster.vq import kmeans2

    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"k must be between 1 and the number of points ({x.shape[0]}), got {k}")
    _, labels = kmeans2(x.double().numpy(), k, minit="++", seed=np.random.default_rng(seed))
    return np.unique(labels, return_inverse=True)[1]
