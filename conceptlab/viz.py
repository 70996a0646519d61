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
