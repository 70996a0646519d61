"""ConceptExpress localization: symmetric KL, FINCH, each phase, the authors' failure cases, and the whole
method on toy-shapes and on tiny SD 2.1- and SDXL-shaped pipelines."""
import importlib

import numpy as np
import pytest
import torch

from conceptlab import express, metrics
from conceptlab.express.cluster import authors_kl, finch, finch_k, kmeans, symmetric_kl
from conceptlab.express.localize import (PAPER_RECIPE, adjacency, aggregate, end_of_text_filter, end_of_text_index,
                                         end_of_text_map, find_concepts, pre_cluster, record_attention,
                                         split_instances)
from conceptlab.models import Model
from conceptlab.toy import tiny

loc_mod = importlib.import_module("conceptlab.express.localize")   # the module (the package exports the function)
from conceptlab.worlds import shapes


def rows(n, d, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(3 * torch.randn(n, d, generator=g), 1).to(dtype)


# ------------------------------------------------------------------------------------------ symmetric KL
def test_symmetric_kl_matches_the_definition():
    p, q = rows(7, 11, 0), rows(5, 11, 1)
    kl = lambda a, b: (a * (a.log() - b.log())).sum(-1)             # noqa: E731
    brute = 0.5 * (kl(p[:, None], q[None]) + kl(q[None], p[:, None]))
    assert torch.allclose(symmetric_kl(p, q, eps=0), brute, atol=1e-5)
    d = symmetric_kl(p)
    assert torch.allclose(d, d.T) and (d.diagonal() == 0).all() and (d >= 0).all()


def test_symmetric_kl_fp16_with_zeros_stays_finite():
    """The authors' KL has no epsilon: fp16 maps with exact zeros give NaN there. Ours computes in fp32."""
    p = rows(6, 16, 2, torch.float16)
    p[:, :4] = 0
    d = symmetric_kl(p)
    assert d.dtype == torch.float32 and torch.isfinite(d).all()


def test_symmetric_kl_refuses_bad_rows():
    with pytest.raises(ValueError, match="NaN"):
        symmetric_kl(torch.full((3, 4), float("nan")))
    with pytest.raises(ValueError, match="same support"):
        symmetric_kl(rows(3, 4), rows(3, 5))
    with pytest.raises(ValueError, match="all-zero row"):
        symmetric_kl(torch.zeros(2, 3))
    p = rows(4, 6)
    before = p.clone()
    symmetric_kl(p)
    assert torch.equal(p, before)                                     # inputs are never modified


# ------------------------------------------------------------------------------------------ FINCH
def blobs(centres, per=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.tensor(c, dtype=torch.float32) + 0.05 * torch.randn(per, 2, generator=g) for c in centres])


def euclid(x):
    return torch.cdist(x, x)


def test_finch_finds_separated_blobs_and_levels_nest():
    x = blobs([(0, 0), (5, 0), (0, 40), (5, 40)])                     # two pairs of blobs, far apart
    levels = finch(x, euclid)
    blob, pair = np.repeat(np.arange(4), 6), np.repeat([0, 1], 12)
    for c in range(levels[0].k):                                      # the first level never mixes blobs
        assert len(np.unique(blob[levels[0].labels == c])) == 1
    for c in range(levels[1].k):                                      # the second never mixes the far pairs
        assert len(np.unique(pair[levels[1].labels == c])) == 1
    ks = [lv.k for lv in levels]
    assert ks == sorted(ks, reverse=True) and ks[-1] == 1
    for fine, coarse in zip(levels, levels[1:]):                      # each level coarsens the previous
        for c in range(fine.k):
            assert len(np.unique(coarse.labels[fine.labels == c])) == 1


def test_finch_constraints_cut_links():
    x = blobs([(0, 0), (5, 0)])
    side = np.repeat([0, 1], 6)
    never_across = lambda lab: torch.from_numpy(                      # noqa: E731
        np.array([[side[lab == a][0] == side[lab == b][0] for b in range(lab.max() + 1)] for a in range(lab.max() + 1)]))
    top = finch(x, euclid, allowed=never_across)[-1]
    assert top.k == 2 and len(np.unique(top.labels[:6])) == 1
    cut = finch(x, euclid, max_link=0.5)[-1]                          # the blobs are 5 apart
    assert cut.k == 2 and cut.link <= 0.5


def test_fixed_k_baselines_give_k_clusters():
    x = blobs([(0, 0), (5, 0), (0, 5)])
    for k in (1, 2, 3, 5):
        assert finch_k(x, k, euclid).max() + 1 == k
        assert kmeans(x, k).max() + 1 == k
    with pytest.raises(ValueError, match="k must be"):
        finch_k(x, 0, euclid)


# ------------------------------------------------------------------------------------------ synthetic scenes
def squares_scene(n_squares, side=16, size=3, gap=1):
    """A grid with n non-touching squares: pixels of a square attend uniformly to it, background pixels to
    the background; the end-of-text map is 1 on squares."""
    lab = np.full((side, side), -1)
    per_row = (side - gap) // (size + gap)
    for j in range(n_squares):
        r, c = divmod(j, per_row)
        y, x = gap + r * (size + gap), gap + c * (size + gap)
        lab[y:y + size, x:x + size] = j
    flat = lab.flatten()
    a = torch.zeros(side * side, side * side)
    for j in range(-1, n_squares):
        members = torch.from_numpy(flat == j)
        a[members.nonzero()[:, 0][:, None], members.nonzero()[:, 0][None]] = 1.0
    a = 0.98 * a / a.sum(1, keepdim=True) + 0.02 / (side * side)
    eot = torch.from_numpy((flat >= 0).astype(np.float32))
    return a, eot, lab


def test_more_than_ten_concepts():
    """The official code has ten token slots and crashes beyond; we find all twelve."""
    a, eot, lab = squares_scene(12)
    out = find_concepts(a, (16, 16), eot, torch.zeros(1, 3, 32, 32), n_max=14)
    assert len(out) == 12
    truth = np.stack([np.kron(lab == j, np.ones((2, 2), bool)) for j in range(12)])
    assert metrics.match_masks(out.masks(), truth)["iou"] == 1.0


def test_finch_never_crossing_n_max_uses_the_first_level():
    a, eot, _ = squares_scene(3)
    levels, chosen, delta, notes = pre_cluster(a, n_max=500)         # 256 pixels: no level has 500 clusters
    assert chosen == 0 and "first level" in notes[0]
    out = find_concepts(a, (16, 16), eot, torch.zeros(1, 3, 16, 16), n_max=500)
    assert len(out) >= 1 and out.notes


def test_last_level_still_above_n_max(monkeypatch):
    """An early-stopping hierarchy (the authors' FINCH can stop above N_max): we take its last level."""
    a, eot, lab = squares_scene(4)
    flat = lab.flatten() + 1
    monkeypatch.setattr(loc_mod, "finch", lambda x, **kw: [loc_mod.Level(np.arange(256), 0.0), loc_mod.Level(flat, 0.1)])
    levels, chosen, delta, notes = pre_cluster(a, n_max=3)
    assert chosen == 1 and delta == 0.1 and "last" in notes[0]


def test_no_cluster_passes_the_filter():
    a, _, _ = squares_scene(3)
    flat = torch.ones(256)                                            # a constant map: nothing beats its mean
    for threshold in ("mean", "otsu"):
        kept, _, bar = end_of_text_filter(np.arange(256) % 5, flat, threshold)
        assert not kept.any() and bar == 1.0
    with pytest.warns(UserWarning, match="end-of-text filter"):
        out = find_concepts(a, (16, 16), flat, torch.zeros(1, 3, 16, 16), n_max=4)
    assert len(out) >= 1 and "keeping them all" in out.notes[-1]
    assert "nothing passed" in out.concepts[0].history[1]


def twin_squares():
    """Two same-looking squares apart: every pixel of either attends to both (as two red circles do), so
    one pre-cluster holds both; the end-of-text map is peaked: 1 on the first square, 0.02 on the second."""
    a, _, lab = squares_scene(2, size=3, gap=4)
    flat = lab.flatten()
    on = torch.from_numpy(flat >= 0)
    a[on.nonzero()[:, 0][:, None], on.nonzero()[:, 0][None]] = 1.0
    a = a / a.sum(1, keepdim=True)
    eot = torch.from_numpy(np.where(flat == 0, 1.0, np.where(flat == 1, 0.02, 1e-4))).float()
    return a, eot, lab


def test_split_instances_cuts_a_cluster_in_two_places():
    lab = np.zeros((4, 6), int)
    lab[:, 3:] = 1
    lab[1, 0] = lab[1, 5] = 2                                         # cluster 2: two pixels far apart
    out = split_instances(lab.flatten(), (4, 6)).reshape(4, 6)
    assert out.max() + 1 == 4 and out[1, 0] != out[1, 5]
    assert len(np.unique(out[lab == 0])) == 1 and len(np.unique(out[lab == 1])) == 1
    assert np.array_equal(split_instances(np.zeros(6, int), (2, 3)), np.zeros(6, int))


def test_twin_objects_are_two_concepts_with_our_defaults():
    """The paper's recipe finds one concept for two look-alike objects (one pre-cluster, and eq. 5's mean
    of a peaked map keeps only the brighter); ours cuts the pre-cluster into pieces, and the log scale with
    Otsu's threshold keeps the fainter object too."""
    a, eot, lab = twin_squares()
    log_eot = torch.log(eot)
    log_eot = (log_eot - log_eot.min()) / (log_eot.max() - log_eot.min())   # what end_of_text_map(scale="log") gives
    lin_eot = (eot - eot.min()) / (eot.max() - eot.min())
    truth = np.stack([np.kron(lab == j, np.ones((2, 2), bool)) for j in range(2)])
    paper = {k: v for k, v in PAPER_RECIPE.items() if k != "eot_scale"}
    found_paper = find_concepts(a, (16, 16), lin_eot, torch.zeros(1, 3, 32, 32), n_max=3, **paper)
    ours = find_concepts(a, (16, 16), log_eot, torch.zeros(1, 3, 32, 32), n_max=3)
    assert len(found_paper) == 1
    assert len(ours) == 2 and metrics.match_masks(ours.masks(), truth)["iou"] == 1.0
    kept, _, _ = end_of_text_filter(lab.flatten() + 1, lin_eot, "mean")        # eq. 5 alone drops the faint square
    assert kept.tolist() == [False, True, False]
    kept, _, _ = end_of_text_filter(lab.flatten() + 1, log_eot, "otsu")
    assert kept.tolist() == [False, True, True]


def test_adjacency_is_four_connected():
    m = np.zeros((3, 4, 4), bool)
    m[0, 0, 0] = m[1, 0, 1] = m[2, 1, 1] = True                       # 0-1 share an edge, 0-2 only a corner
    adj = adjacency(m)
    assert adj[0, 1] and adj[1, 2] and not adj[0, 2]


def test_end_of_text_index_when_padding_is_end_of_text(toy):
    """SD 1.x pads with the end-of-text id; the official code finds the EOT by the padding id and breaks."""
    import copy
    tok = copy.deepcopy(toy.tokenizer)
    assert end_of_text_index(tok) == 1
    tok.pad_token = tok.eos_token
    assert tok.pad_token_id == tok.eos_token_id and end_of_text_index(tok) == 1


def test_bad_inputs(toy):
    img = shapes.scene("heldout", 0).image
    with pytest.raises(ValueError, match="n_max"):
        express.localize(toy, img, n_max=0)
    with pytest.raises(ValueError, match="delta_from"):
        pre_cluster(rows(8, 8), delta_from="max")
    with pytest.raises(TypeError, match="conceptlab Model"):
        express.localize(object(), img)
    with pytest.raises(ValueError, match="grid"):
        find_concepts(rows(8, 8), (4, 4), torch.ones(8), torch.zeros(1, 3, 8, 8))
    a, eot, _ = twin_squares()
    with pytest.raises(ValueError, match="delta_factor"):
        find_concepts(a, (16, 16), eot, torch.zeros(1, 3, 16, 16), delta_factor=0)
    with pytest.raises(ValueError, match="threshold must be"):
        find_concepts(a, (16, 16), eot, torch.zeros(1, 3, 16, 16), eot_threshold="median")
    with pytest.raises(ValueError, match="scale must be"):
        end_of_text_map(record_attention(toy, img), toy, (16, 16), scale="sqrt")


# ------------------------------------------------------------------------------------------ on models
def test_localize_on_toy_shapes(toy):
    s = shapes.scene("heldout", 6)
    image = s.image.copy()
    out = express.localize(toy, image)
    assert np.array_equal(image, s.image)                             # the input is untouched
    assert out.grid == (16, 16) and out.attention.shape == (256, 256)
    assert torch.allclose(out.attention.sum(1), torch.ones(256), atol=1e-4)
    masks = out.masks()
    assert masks.shape[1:] == (32, 32) and len(out) >= 1
    assert masks.sum(0).max() == 1                                    # concepts never overlap
    for c in out.concepts:
        assert len(c.history) == 3 and c.distribution.shape == (256,)
        assert abs(float(c.distribution.sum()) - 1) < 1e-4
    again = express.localize(toy, image)                              # deterministic
    assert np.array_equal(again.masks(), masks)
    # the concepts sit on the objects: most of each mask is object, not background
    objects = np.any(np.stack(s.masks), 0)
    assert all((c.mask & objects).sum() > 0.5 * c.mask.sum() for c in out.concepts)


def test_redo_equals_localize_with_the_same_settings(toy, monkeypatch):
    image = shapes.scene("heldout", 11).image
    ours = express.localize(toy, image)
    settings = dict(paper=PAPER_RECIPE, no_split=dict(instances=False), n_max=dict(n_max=6))
    fresh = {name: express.localize(toy, image, **kw) for name, kw in settings.items()}
    monkeypatch.setattr(loc_mod, "record_attention", lambda *a, **k: pytest.fail("redo ran the UNet"))
    for name, kw in settings.items():
        again = ours.redo(**kw)
        assert np.array_equal(again.masks(), fresh[name].masks()), name
        assert np.array_equal(again.kept, fresh[name].kept) and again.settings == fresh[name].settings
    back = ours.redo(**PAPER_RECIPE).redo(**{k: ours.settings[k] for k in PAPER_RECIPE})   # and back again
    assert np.array_equal(back.masks(), ours.masks()) and back.settings == ours.settings
    with pytest.raises(ValueError, match="new UNet pass"):
        ours.redo(renormalize=False)
    with pytest.raises(ValueError, match="scale"):
        ours.redo(eot_scale="sqrt")
    a, eot = rows(256, 256), torch.rand(256)
    with pytest.raises(ValueError, match="not made by localize"):
        find_concepts(a, (16, 16), eot, torch.zeros(1, 3, 16, 16), n_max=4).redo(instances=False)


def test_aggregate_renormalization_changes_layer_shares(toy):
    cache = record_attention(toy, shapes.scene("heldout", 1).image)
    _, grid, ours = aggregate(cache, renormalize=True)
    _, _, official = aggregate(cache, renormalize=False)
    coarse = [n for n, v in ours.items() if v["grid"] != grid]
    for n in coarse:                                                  # without renormalizing, coarse layers weigh more
        assert official[n]["share"] > ours[n]["share"]
        assert abs(ours[n]["share"] - ours[n]["weight"]) < 1e-4


@pytest.mark.parametrize("build", ["sd2", "sdxl"])
def test_localize_on_other_backbones(build):
    torch.manual_seed(0)
    model = Model(getattr(tiny, build)(), f"tiny-{build}")
    img = np.zeros((model.image_size[0], model.image_size[1], 3), np.uint8)
    img[2:8, 2:8] = (200, 30, 30)
    out = express.localize(model, img, n_max=4)
    assert out.masks().shape[1:] == model.image_size
    assert sum(lv.k for lv in out.levels) > 0


# ------------------------------------------------------------------------------------------ scoring and pictures
def test_match_masks_scores():
    truth = np.zeros((2, 8, 8), bool)
    truth[0, :4, :4] = truth[1, 4:, 4:] = True
    perfect = metrics.match_masks(truth[::-1].copy(), truth)          # order does not matter: Hungarian
    assert perfect == dict(iou=1.0, recall=1.0, precision=1.0, count_error=0)
    rows, cols, ious = metrics.hungarian(truth[::-1].copy(), truth)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)] and (ious == 1).all()
    half = np.zeros((3, 8, 8), bool)
    half[0, :4, :2] = True                                            # IoU 0.5 with object 0
    half[1, 4:, 4:] = True                                            # exact on object 1
    half[2, :, :1] = True                                             # a spare mask
    r = metrics.match_masks(half, truth)
    assert r["iou"] == pytest.approx(0.75) and r["recall"] == 1.0 and r["precision"] == pytest.approx(2 / 3)
    assert r["count_error"] == 1
    assert metrics.match_masks(np.zeros((0, 8, 8), bool), truth)["recall"] == 0.0
    with pytest.raises(ValueError, match="mask stacks"):
        metrics.match_masks(np.zeros((1, 4, 4), bool), truth)


def test_ground_truth_on_the_grid():
    from conceptlab.express.evaluate import label_masks, object_separation, purity, truth_on_grid

    a, _, lab = squares_scene(4)
    masks = np.stack([np.kron(lab == j, np.ones((2, 2), bool)) for j in range(4)])   # (4, 32, 32)
    truth = truth_on_grid(masks, (16, 16))
    assert np.array_equal(truth, lab.flatten())
    assert purity(lab.flatten(), truth) == 1.0 and purity(np.zeros(256, int), truth) < 0.9
    within, across = object_separation(a, truth)
    assert within < across
    assert np.array_equal(label_masks(lab.flatten() + 1, (16, 16), (32, 32))[1:], masks)


def test_structure_of_a_localization_against_its_masks():
    from types import SimpleNamespace

    from conceptlab.express.evaluate import structure, structure_rates

    a, _, lab = squares_scene(4)
    masks = np.stack([np.kron(lab == j, np.ones((2, 2), bool)) for j in range(4)])   # (4, 32, 32)
    on_one = SimpleNamespace(grid_mask=(lab == 0))                  # a concept lying on object 0 only
    half = SimpleNamespace(grid_mask=np.ones((16, 16), bool))       # the whole grid: objects' share of it
    loc = SimpleNamespace(grid=(16, 16), attention=a, pre_labels=lab.flatten(), concepts=[on_one, half])
    got = structure(loc, masks)
    assert got["within"] < got["across"] and got["purity"] == 1.0
    assert got["on_objects"] == [1.0, pytest.approx((lab >= 0).mean())]
    rows = [got, dict(got, within=2.0, across=1.0, purity=0.5, on_objects=[0.2])]
    assert (lab >= 0).mean() < 0.5                                  # so of the 3 concepts only on_one counts
    assert structure_rates(rows) == dict(scenes=2, separated=0.5, purity=0.75, concepts=3,
                                         on_objects=pytest.approx(1 / 3))


def test_localization_figures(toy):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from conceptlab import viz, widgets

    image = shapes.scene("heldout", 6).image
    loc = express.localize(toy, image)
    assert len(viz.show_localization(loc).axes) == 5 + len(loc)
    assert len(viz.show_levels(loc).axes) == len(loc.levels)
    cache = record_attention(toy, image)
    assert len(viz.show_layer_contributions(cache, 3, 4).axes) == len(cache.layers("self"))
    for y, x in ((16, 0), (0, -1), (2.5, 3)):                        # the finest grid is 16x16 on toy-shapes
        with pytest.raises(ValueError, match="not a cell of the 16x16 attention grid"):
            viz.show_layer_contributions(cache, y, x)
    before = len(plt.get_fignums())
    widgets.n_max_explorer(toy, image, values=(4, 10), static=True)
    assert len(plt.get_fignums()) == before + 2
    plt.close("all")


# ------------------------------------------------------------------------------------------ the authors' code
def authors_finch(data, min_sim=None, masks=None, dtype=np.float64):
    """FINCH as ConceptExpress's clustering/finch.py @db1dc61 runs it, re-derived in numpy for this test:
    first neighbours over all points; candidate links the off-diagonal non-zeros of (A+I)(A+I)^T; a link cut
    when its distance exceeds min_sim or the two clusters' masks do not touch (fewer 4-connected pieces
    together than apart); plain means of the data rows; a later level dropped when it leaves one cluster or
    merges nothing, and the loop run while a level merges more than one pair. Returns (levels (n, L),
    counts, per level max(d * count) over the kept links, None for the first). dtype: of the distances (theirs
    is float32; see cluster.authors_kl)."""
    import scipy.sparse as sp
    from scipy import ndimage

    def kld(m):                        # their symmetric KL, no epsilon; float64 (see cluster.authors_kl)
        m = m.astype(dtype)
        plogp = np.sum(m * np.log(m), -1, keepdims=True)
        pq = plogp - m @ np.log(m).T
        return (pq + pq.T) / 2

    def pieces(mask):
        return ndimage.label(mask)[1]

    def rank(mat, cur_masks):
        d = kld(mat)
        np.fill_diagonal(d, 1e12)
        first = np.argmin(d, 1)
        s = len(mat)
        a = sp.csr_matrix((np.ones(s), (np.arange(s), first)), shape=(s, s)) + sp.eye(s, format="csr")
        a = (a @ a.T).toarray()
        np.fill_diagonal(a, 0)
        if min_sim is not None:
            a[d > min_sim] = 0
        if cur_masks is not None:
            for i in range(s):
                for j in range(s):
                    if i != j and pieces(cur_masks[i] | cur_masks[j]) == pieces(cur_masks[i]) + pieces(cur_masks[j]):
                        a[i, j] = 0
        k, u = sp.csgraph.connected_components(sp.csr_matrix(a), directed=True, connection="weak")
        return u, k, float(np.max(d * a))

    def means(c):
        return np.stack([data[c == j].mean(0) for j in range(c.max() + 1)])

    def merged_masks(c):
        return None if masks is None else np.stack([masks[c == j].any(0) for j in range(c.max() + 1)])

    c, k0, _ = rank(data, masks)
    cols, counts, links = [c], [k0], [min_sim]
    exit_clust = 2
    while exit_clust > 1:
        u, k, link = rank(means(cols[-1]), merged_masks(cols[-1]))
        exit_clust = counts[-1] - k
        if k == 1 or exit_clust < 1:
            break
        cols.append(u[cols[-1]])
        counts.append(k)
        links.append(link)
    return np.stack(cols, 1), counts, links


def authors_localization(model, image, dtype=np.float64):
    """ConceptExpress's localization (train.py get_self_attention and cluster_attention @db1dc61) on the grid
    of the model's finest self-attention (their 64 x 64), re-derived for this test: grid masks (N, h, w)."""
    cache = record_attention(model, image)
    grid = cache.finest("self")
    side = grid[0]
    out, rw = 0.0, 0.0
    for name in cache.layers("self"):
        res = cache.grids[name][0]
        maps = cache.maps("self", layers=[name]).mean(0).float()                     # (q, q) heads averaged
        up = torch.nn.functional.interpolate(maps.reshape(1, -1, res, res), size=grid, mode="bilinear")
        up = up.reshape(res, res, -1).repeat_interleave(side // res, 0).repeat_interleave(side // res, 1)
        out = out + up.reshape(side * side, side * side) * (res / side)
        rw += res / side
    x = (out / rw)
    x = (x / x.sum(-1, keepdim=True)).numpy()
    c, counts, links = authors_finch(x, dtype=dtype)
    index = next(i for i, k in enumerate(counts) if k >= 10 and counts[i + 1] < 10)    # their crash if none
    labels, min_sim = c[:, index], links[index]
    cross = [n for n in cache.layers("cross") if cache.grids[n] == (16, 16)]
    eot = cache.maps("cross", layers=cross).mean(0)[:, end_of_text_index(model.tokenizer)].reshape(1, 1, 16, 16)
    eot = torch.nn.functional.interpolate(eot, size=grid, mode="bilinear").reshape(grid).float()
    eot = ((eot - eot.min()) / (eot.max() - eot.min())).numpy()
    kept = [j for j in range(labels.max() + 1)
            if (eot * (labels == j).reshape(grid)).sum() / (labels == j).sum() / eot.mean() > 1.0]
    masks = np.stack([(labels == j).reshape(grid) for j in kept])
    feats = np.stack([x[labels == j].mean(0) for j in kept])
    c2, _, _ = authors_finch(feats, min_sim=min_sim, masks=masks, dtype=dtype)
    final = c2[:, -1]
    return np.stack([masks[final == j].any(0) for j in range(final.max() + 1)])


def same_masks(a, b):
    return len(a) == len(b) and sorted(m.tobytes() for m in a) == sorted(m.tobytes() for m in b)


def test_authors_preset_is_the_authors_localization(toy):
    """express.AUTHORS_LOCALIZE gives the authors' concepts on 10 of 10 held-out toy scenes."""
    for i in range(10):
        image = shapes.scene("heldout", i).image
        theirs = authors_localization(toy, image)
        ours = express.localize(toy, image, **express.AUTHORS_LOCALIZE)
        assert same_masks(np.stack([c.grid_mask for c in ours.concepts]), theirs), i


def test_authors_finch_step_matches_the_re_derivation():
    """cluster.finch(linking="authors") on random distributions: the same levels and links as authors_finch,
    with and without a delta cut."""
    x = rows(40, 16, 3, torch.float64)
    theirs, counts, links = authors_finch(x.numpy())
    ours = finch(x, distance=authors_kl, linking="authors")
    assert [lv.k for lv in ours] == counts
    for j, lv in enumerate(ours):
        assert np.array_equal(np.unique(lv.labels, return_inverse=True)[1], np.unique(theirs[:, j], return_inverse=True)[1])
        if j:
            assert abs(lv.link - links[j]) < 1e-4 * links[j]
    cut = links[1] * 0.5
    theirs_cut, counts_cut, _ = authors_finch(x.numpy(), min_sim=cut)
    ours_cut = finch(x, distance=authors_kl, max_link=cut, linking="authors")
    assert counts_cut[0] < 40 and [lv.k for lv in ours_cut] == counts_cut   # the cut leaves some links
    assert counts_cut[-1] > counts[-1]                                      # and holds merges back


def test_fixed_k_baselines_also_run_through_the_filter_as_the_paper_compares_them(toy):
    from conceptlab.course import at_model_size
    from conceptlab.express.evaluate import compare

    s = at_model_size([s for s in shapes.scenes("heldout", 8) if len(s.labels) >= 2][0], toy)
    rows = {r["method"]: r for r in compare(toy, [s], ks=(2, 7))}
    for k in (2, 7):
        for base in (f"k-means {k}", f"FINCH {k}"):
            plain, filtered = rows[base], rows[f"{base}, filtered"]
            found = lambda r: r["count_error"] + len(s.labels)     # noqa: E731  (masks predicted)
            assert found(plain) == k and found(filtered) <= k
            assert filtered["iou"] <= plain["iou"] + 1e-9           # dropping masks can only lose matches
    assert rows["k-means 7, filtered"]["count_error"] < rows["k-means 7"]["count_error"]   # background dropped
