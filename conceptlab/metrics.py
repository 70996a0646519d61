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
    m = F.interpolate(m[None, None], size=tuple(attention.shape), mode="area")[0, 0]
    a = attention.float()
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
