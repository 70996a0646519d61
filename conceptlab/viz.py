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
