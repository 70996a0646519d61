"""Figures for the course, made by library code so that the book and a student's notebook agree."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .images import to_pil
from .worlds.shapes import Scene


def _as_display(im) -> np.ndarray:
    if isinstance(im, torch.Tensor):
        return np.asarray(to_pil(im)[0])
    return np.asarray(im)


def show_images(images, titles=None, ncols: int = 8, size: float = 1.5, suptitle: str | None = None):
    """A grid of images (PIL, uint8 arrays or tensors (3, H, W) in [-1, 1]) with optional titles."""
    images = list(images)
    n = len(images)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if suptitle else 0)), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(_as_display(images[k]), interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[k], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def show_scene(scene: Scene, size: float = 1.6):
    """A scene, then each object's ground-truth mask, titled with the caption and the labels."""
    panels = [scene.image] + [np.repeat(m[..., None] * 255, 3, -1).astype(np.uint8) for m in scene.masks]
    fig = show_images(panels, ["scene"] + [f"mask: {l}" for l in scene.labels], ncols=len(panels), size=size)
    fig.suptitle(f'"{scene.caption}"', fontsize=9)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------- attention
def _heat(ax, m: torch.Tensor, title: str | None = None, cmap: str = "magma"):
    ax.imshow(m.detach().float().cpu().numpy(), cmap=cmap, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=7)


def short_layer(name: str) -> str:
    """'up_blocks.1.attentions.0.transformer_blocks.0.attn2' -> 'up1.0 attn2' (for titles)."""
    parts = name.split(".")
    block = {"down_blocks": "down", "up_blocks": "up", "mid_block": "mid"}.get(parts[0], parts[0])
    if parts[0] == "mid_block":
        return f"mid.{parts[2]} {parts[-1]}"
    return f"{block}{parts[1]}.{parts[3]} {parts[-1]}"


def show_token_maps(cache, words, image=None, size=None, size_in: float = 1.5, **select):
    """Each word's cross-attention over the image, averaged over the selected steps and layers
    (`steps=`, `layers=` as in AttentionCache.maps): one panel per word, the image first."""
    panels = ([("image", None)] if image is not None else []) + [(w, cache.token_map(w, size=size, **select)) for w in words]
    fig, axes = plt.subplots(1, len(panels), figsize=(size_in * len(panels), size_in + 0.3), squeeze=False)
    for ax, (w, m) in zip(axes[0], panels):
        if m is None:
            ax.imshow(_as_display(image), interpolation="nearest"); ax.axis("off"); ax.set_title("image", fontsize=7)
        else:
            _heat(ax, m, f'"{w}"')
    fig.tight_layout()
    return fig


def show_token_per_layer(cache, word, size_in: float = 1.3, **select):
    """One word's cross-attention in every recorded cross-attention layer, each at its own resolution."""
    layers = cache.layers("cross")
    fig, axes = plt.subplots(1, len(layers), figsize=(size_in * len(layers), size_in + 0.5), squeeze=False)
    for ax, name in zip(axes[0], layers):
        h, w = cache.grids[name]
        _heat(ax, cache.token_map(word, size=(h, w), **{**select, "layers": [name]}), f"{short_layer(name)}\n{h}x{w}")
    fig.suptitle(f'"{word}" per layer', fontsize=9)
    fig.tight_layout()
    return fig


def show_token_over_steps(cache, word, steps, size=None, size_in: float = 1.3, **select):
    """One word's cross-attention at chosen steps (averaged over the selected layers): how it sharpens."""
    fig, axes = plt.subplots(1, len(steps), figsize=(size_in * len(steps), size_in + 0.5), squeeze=False)
    for ax, s in zip(axes[0], steps):
        t = cache.timesteps.get(s)
        _heat(ax, cache.token_map(word, size=size, steps=[s], **select), f"step {s}" + (f"\nt={t:.0f}" if t is not None else ""))
    fig.suptitle(f'"{word}" over steps', fontsize=9)
    fig.tight_layout()
    return fig


def show_pixel_attention(cache, y: int, x: int, image=None, size=None, size_in: float = 2.0, **select):
    """Where the query pixel (y, x) looks in self-attention (averaged over the selected layers and steps),
    with the pixel marked; the image first when given."""
    m = cache.pixel_map(y, x, size=size, **select)
    h, w = m.shape
    n = 2 if image is not None else 1
    fig, axes = plt.subplots(1, n, figsize=(size_in * n, size_in + 0.3), squeeze=False)
    if image is not None:
        im = _as_display(image)
        axes[0, 0].imshow(im, interpolation="nearest"); axes[0, 0].axis("off")
        sy, sx = im.shape[0] / h, im.shape[1] / w
        axes[0, 0].add_patch(plt.Rectangle((x * sx - 0.5, y * sy - 0.5), sx, sy, fill=False, color="white", lw=1.5))
        axes[0, 0].set_title(f"pixel ({y}, {x}) of {h}x{w}", fontsize=7)
    _heat(axes[0, -1], m, "its self-attention")
    axes[0, -1].plot([x], [y], "c+", ms=8)
    fig.tight_layout()
    return fig


def show_trajectory(traj, decode, stage: str = "sample", every: int = 5, size_in: float = 1.2):
    """The strip of predicted x_0 along a recorded trajectory, every `every` steps and the last,
    decoded by `decode` (e.g. traj.decoded): how the image emerges from noise."""
    steps = traj.stage(stage)
    if not steps:
        raise ValueError(f"no steps recorded for stage {stage!r}; recorded stages: {sorted({s.stage for s in traj.steps})}")
    picked = list(range(0, len(steps), every))
    if picked[-1] != len(steps) - 1:
        picked.append(len(steps) - 1)
    images = [decode(steps[k])[0] for k in picked]
    return show_images(images, [f"step {steps[k].step}\nt={steps[k].t:.0f}" for k in picked], ncols=len(images),
                       size=size_in, suptitle=f"predicted x0 along the {stage} trajectory")


# ------------------------------------------------------------------------------------- ConceptExpress
def _labels(ax, labels: np.ndarray, grid, title: str, image=None):
    lab = np.ma.masked_less(np.asarray(labels).reshape(grid), 0)
    if image is not None:
        ax.imshow(_as_display(image), extent=(-0.5, grid[1] - 0.5, grid[0] - 0.5, -0.5), alpha=0.35)
    ax.imshow(lab, cmap="tab20", interpolation="nearest", alpha=0.85 if image is not None else 1.0)
    ax.axis("off")
    ax.set_title(title, fontsize=7)


def show_layer_contributions(cache, y: int, x: int, renormalize: bool = True, size_in: float = 1.3):
    """What each self-attention layer says about pixel (y, x) of the finest grid, brought to that grid as
    ConceptExpress aggregates it (eq. 3-4), titled with the layer's weight and its share of the total."""
    from .express.localize import aggregate, upsample_rows

    _, grid, info = aggregate(cache, renormalize)
    if not (isinstance(y, (int, np.integer)) and isinstance(x, (int, np.integer)) and 0 <= y < grid[0] and 0 <= x < grid[1]):
        raise ValueError(f"pixel ({y}, {x}) is not a cell of the {grid[0]}x{grid[1]} attention grid: give a row in "
                         f"0..{grid[0] - 1} and a column in 0..{grid[1] - 1}")
    names = list(info)
    fig, axes = plt.subplots(1, len(names), figsize=(size_in * len(names), size_in + 0.5), squeeze=False)
    for ax, n in zip(axes[0], names):
        a = upsample_rows(cache.maps("self", layers=[n]).mean(0), cache.grids[n], grid, renormalize)
        _heat(ax, a[y * grid[1] + x].view(grid), f"{short_layer(n)} {info[n]['grid'][0]}x{info[n]['grid'][1]}\n"
              f"w {info[n]['weight']:.2f}, share {info[n]['share']:.2f}")
        ax.plot([x], [y], "c+", ms=8)
    fig.suptitle(f"pixel ({y}, {x}): each layer's attention ({'renormalized, DiffSeg' if renormalize else 'official'})", fontsize=9)
    fig.tight_layout()
    return fig


def show_levels(loc, size_in: float = 1.5):
    """Every FINCH level of pre-clustering of a Localization, the chosen one marked."""
    chosen = loc.chosen
    fig, axes = plt.subplots(1, len(loc.levels), figsize=(size_in * len(loc.levels), size_in + 0.4), squeeze=False)
    for i, (ax, lv) in enumerate(zip(axes[0], loc.levels)):
        _labels(ax, lv.labels, loc.grid, f"level {i + 1}: {lv.k} clusters" + (" (chosen)" if i == chosen else ""))
    fig.tight_layout()
    return fig


def show_localization(loc, size_in: float = 1.7):
    """The phases of ConceptExpress on one image: input, pre-clusters (cut into 4-connected pieces when
    localize's instances=True), end-of-text map, the pieces the filter kept, the concepts after
    post-clustering, each concept's mask."""
    kept = np.where(np.isin(loc.pieces, np.flatnonzero(loc.kept)), loc.pieces, -1)
    n_pre, n_pieces = int(loc.pre_labels.max()) + 1, int(loc.pieces.max()) + 1
    n = 5 + len(loc.concepts)
    fig, axes = plt.subplots(1, n, figsize=(size_in * n, size_in + 0.4), squeeze=False)
    ax = axes[0]
    ax[0].imshow(_as_display(loc.image[0]), interpolation="nearest")
    ax[0].axis("off")
    ax[0].set_title("input", fontsize=7)
    _labels(ax[1], loc.pieces, loc.grid, f"1. pre-clusters ({n_pre})" if n_pieces == n_pre else
            f"1. {n_pre} pre-clusters, {n_pieces} pieces")
    _heat(ax[2], loc.eot.view(loc.grid), "2. end-of-text attention")
    _labels(ax[3], kept, loc.grid, f"3. kept by the filter ({int(loc.kept.sum())})", loc.image[0])
    _labels(ax[4], loc.post_labels, loc.grid, f"4. concepts ({len(loc.concepts)})", loc.image[0])
    for j, c in enumerate(loc.concepts):
        ax[5 + j].imshow(_as_display(loc.image[0]) * c.mask[..., None].astype(np.uint8), interpolation="nearest")
        ax[5 + j].axis("off")
        ax[5 + j].set_title(f"concept {j}", fontsize=7)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------- sound
def show_spectrograms(waves, titles=None, sample_rate: int = 16000, bands: bool = True, size: tuple = (3.0, 2.2),
                      suptitle: str | None = None):
    """Log-mel spectrograms (time across, 64 mel bands up) of waveforms (T,) (or a batch (B, T)), one panel
    each; bands=True marks each sound kind's frequency band (the oracle's support) on the left."""
    from . import audio
    from .worlds import sounds

    if not isinstance(waves, (list, tuple)):                     # one waveform (T,) or a batch (B, T)
        waves = list(torch.as_tensor(np.asarray(waves, np.float32)).reshape(-1, np.shape(waves)[-1]))
    n = len(waves)
    fig, axes = plt.subplots(1, n, figsize=(size[0] * n, size[1]), squeeze=False)
    mels = audio.N_MELS
    hz_to_bin = lambda f: mels * 2595 * np.log10(1 + f / 700) / (2595 * np.log10(1 + audio.F_MAX / 700))  # noqa: E731
    for k, (ax, w) in enumerate(zip(axes[0], waves)):
        spec = audio.log_mel(torch.as_tensor(np.asarray(w, np.float32)).reshape(-1), sample_rate)[0]
        seconds = spec.shape[-1] * audio.HOP / sample_rate
        ax.imshow(spec.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=-11.5, vmax=8,
                  extent=(0, seconds, 0, mels))
        ax.set_xlabel("seconds", fontsize=7); ax.tick_params(labelsize=6)
        ax.set_yticks([])
        if bands:
            for kind, (_, (lo, hi)) in sounds.KINDS.items():
                ax.axhspan(hz_to_bin(lo), hz_to_bin(hi), xmin=0, xmax=0.03, color="white", alpha=0.8)
                if k == 0:
                    ax.text(-0.02 * seconds, hz_to_bin((lo + hi) / 2), kind, fontsize=6, ha="right", va="center")
        if titles is not None:
            ax.set_title(titles[k], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def show_source_presence(rows: dict, title: str | None = None, size: tuple = (5.5, 2.4)):
    """Grouped bars: rows {setting: {kind: oracle presence}}, one group per kind, one bar per setting;
    the dashed line at 1 is "all of the clean source"."""
    import pandas as pd
    import seaborn as sns

    df = pd.DataFrame([dict(setting=s, kind=k, presence=p) for s, d in rows.items() for k, p in d.items()])
    fig, ax = plt.subplots(figsize=size)
    sns.barplot(df, x="kind", y="presence", hue="setting", ax=ax)
    ax.axhline(1.0, color="grey", ls="--", lw=0.8)
    ax.set_ylabel("oracle presence\n(1 = the clean source)", fontsize=8); ax.set_xlabel("")
    ax.legend(fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
