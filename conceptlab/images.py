"""Image <-> tensor conversion with the checks every public function makes at the door."""
from __future__ import annotations

import warnings

import numpy as np
import torch
from PIL import Image


def to_tensor(image, size: tuple[int, int] | None = None, name: str = "image") -> torch.Tensor:
    """PIL image, uint8 (H, W, 3) array, or float tensor (3, H, W) / (B, 3, H, W) in [-1, 1]
    -> a new float32 tensor (B, 3, H, W) in [-1, 1]. The input is never modified.

    `size` = (height, width) the model expects; a mismatch is an error that says how to fix it.
    A float tensor must hold [-1, 1] values. One in [0, 1] (torchvision's convention) is valid [-1, 1] data and
    cannot be told apart: it reads as a washed-out picture. Convert it first with x * 2 - 1. When every value
    lies in [0, 1] and they spread over more than half of it, as a [0, 1] picture's do and a [-1, 1] picture's
    rarely can (no pixel darker than mid-grey in any channel), a warning says so.
    """
    if isinstance(image, (list, tuple)):
        if not image:
            raise ValueError(f"{name}: got an empty list of images")
        return torch.cat([to_tensor(im, size, name) for im in image])
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            raise ValueError(f"{name} has mode {image.mode!r}, expected 'RGB': call image.convert('RGB') first")
        x = torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1)[None] / 127.5 - 1
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"{name}: a numpy image must be (H, W, 3) uint8, got shape {image.shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"{name}: a numpy image must be uint8 in 0..255, got {image.dtype}; "
                             "for floats in [-1, 1] pass a torch tensor (3, H, W)")
        x = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
    elif isinstance(image, torch.Tensor):
        x = image.detach().to(torch.float32).clone()
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{name}: a tensor image must be (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
        lo, hi = float(x.min()), float(x.max())
        if lo < -1.001 or hi > 1.001:
            raise ValueError(f"{name}: tensor values must lie in [-1, 1], got [{lo:.3g}, {hi:.3g}]; "
                             "for 0..255 pixels divide by 127.5 and subtract 1")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name}: tensor contains NaN or inf")
        if lo >= 0 and hi <= 1 and hi - lo > 0.5:
            warnings.warn(f"{name}: every value lies in [0, 1] ([{lo:.2f}, {hi:.2f}]): conceptlab reads tensors as "
                          "[-1, 1], so this one becomes a washed-out picture if it is a [0, 1] (torchvision) image; "
                          "convert it with x * 2 - 1", stacklevel=3)
    else:
        raise TypeError(f"{name}: expected a PIL image, a uint8 numpy array or a torch tensor, got {type(image).__name__}")
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        h, w = size
        raise ValueError(f"{name} is {x.shape[-1]}x{x.shape[-2]} (width x height) but this model takes {w}x{h}: "
                         f"resize it first, e.g. image.resize(({w}, {h}))")
    return x


def one_image(image, size: tuple[int, int] | None, what: str) -> torch.Tensor:
    """to_tensor for functions that take exactly one image: a batch of several is refused, not cut to its first."""
    x = to_tensor(image, size, "image")
    if len(x) != 1:
        raise ValueError(f"{what} takes one image, got a batch of {len(x)}: call it once per image")
    return x


def to_pil(x: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) or (3, H, W) in [-1, 1] -> list of PIL images."""
    x = x.detach().cpu().float()
    x = x[None] if x.ndim == 3 else x
    a = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(im) for im in a]
