"""The shapes-world oracle: how present is "a red circle" in any 32x32 image?

It reads pixels, not a network: (1) every pixel is given the nearest colour of the world's palette
(object colours and backgrounds); (2) the pixels of the named colour split into connected blobs;
(3) each blob is compared with the three shape templates fitted to its bounding box (soft IoU).
A blob of the named colour whose best-fitting template is the named shape makes the object present.

presence score in [0, 1] = size factor x aspect factor x IoU with the named shape's template,
halved when another shape fits the blob better. `is_present` thresholds it at 0.5.
Its own accuracy on clean and decoded scenes is measured by `benchmarks/toy_quality.py`.
"""
from __future__ import annotations

import functools

import numpy as np
from PIL import Image
from scipy import ndimage

from .shapes import BACKGROUNDS, PALETTE, SIZE, SUPERSAMPLE, WORLD, World

THRESHOLD = 0.5
MIN_AREA = 5          # blobs smaller than this (pixels) are noise
FULL_AREA = 25        # blobs this large get a full size factor (the smallest normal object is ~42 px)



@functools.lru_cache(maxsize=None)
def palette(world: World = WORLD) -> np.ndarray:
    """(colours + 9, 3): the world's object colours in its order, then each background's top, bottom and middle."""
    return np.array([PALETTE[c] for c in world.colours]
                    + [c for top, bottom in BACKGROUNDS.values() for c in (top, bottom, np.add(top, bottom) / 2)],
                    dtype=np.float32)


def as_array(image) -> np.ndarray:
    """PIL image, uint8 (H, W, 3) array, or float tensor/array (3, H, W) in [-1, 1] -> float (H, W, 3) 0..255."""
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            raise ValueError(f"the oracle reads RGB images, got mode {image.mode!r}; call image.convert('RGB')")
        return np.asarray(image, dtype=np.float32)
    a = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image)
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[-1] != 3:                     # (3, H, W) in [-1, 1]
        return (np.clip(a.astype(np.float32), -1, 1).transpose(1, 2, 0) + 1) * 127.5
    if a.ndim == 3 and a.shape[-1] == 3:
        if a.dtype.kind == "f" and a.size and float(np.abs(a).max()) <= 1.0:
            raise ValueError("a float (H, W, 3) array with values in [-1, 1] is ambiguous: the oracle reads (H, W, 3) "
                             "arrays as 0..255 pixels. Give uint8 pixels, or a (3, H, W) tensor in [-1, 1]")
        return a.astype(np.float32)
    raise ValueError(f"expected an RGB image (PIL, (H, W, 3) uint8, or (3, H, W) in [-1, 1]), got shape {a.shape}")


def at_world_size(a: np.ndarray) -> np.ndarray:
    """Images of another size (a real model's 512x512, say) are box-filtered to the world's 32x32."""
    if a.shape[:2] == (SIZE, SIZE):
        return a
    if a.shape[0] < SIZE or a.shape[1] < SIZE:
        raise ValueError(f"a {a.shape[1]}x{a.shape[0]} image is smaller than the shapes world's {SIZE}x{SIZE}: it "
                         "cannot show the world's objects; give the scene at its size or larger")
    im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8)).resize((SIZE, SIZE), Image.BOX)
    return np.asarray(im, dtype=np.float32)


def colour_map(image, world: World = WORLD) -> np.ndarray:
    """(32, 32) int: index into `palette(world)` of each pixel's nearest colour (the first are object colours)."""
    a = at_world_size(as_array(image))
    d = ((a[:, :, None, :] - palette(world)[None, None]) ** 2).sum(-1)
    return d.argmin(-1)


def _template(shape: str, top: int, bottom: int, left: int, right: int, h: int, w: int) -> np.ndarray:
    """Soft (h, w) coverage of `shape` fitted to the box [left, right) x [top, bottom) in pixels."""
    c = (np.arange(max(h, w) * SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    x, y = np.meshgrid(c[: w * SUPERSAMPLE], c[: h * SUPERSAMPLE])
    cx, cy, hw, hh = (left + right) / 2, (top + bottom) / 2, (right - left) / 2, (bottom - top) / 2
    if shape == "circle":
        fine = ((x - cx) / hw) ** 2 + ((y - cy) / hh) ** 2 <= 1
    elif shape == "square":
        fine = (np.abs(x - cx) <= hw) & (np.abs(y - cy) <= hh)
    elif shape == "diamond":
        fine = np.abs(x - cx) / hw + np.abs(y - cy) / hh <= 1
    else:                                           # triangle: apex at the top centre, base at the bottom
        t = (y - top) / (bottom - top)
        fine = (t >= 0) & (t <= 1) & (np.abs(x - cx) <= hw * t)
    return fine.astype(np.float32).reshape(h, SUPERSAMPLE, w, SUPERSAMPLE).mean(axis=(1, 3))


def blobs(image, colour: str, world: World = WORLD) -> list[dict]:
    """The connected blobs of one colour, each with its area, box and per-shape template IoU."""
    if colour not in world.colours:
        raise ValueError(f"unknown colour {colour!r}; the shapes world has {world.colours}")
    cmap = colour_map(image, world)
    h, w = cmap.shape
    lab, n = ndimage.label(cmap == world.colours.index(colour))
    out = []
    for k, sl in enumerate(ndimage.find_objects(lab), start=1):
        m = lab == k
        area = int(m.sum())
        if area < MIN_AREA:
            continue
        top, bottom, left, right = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
        ious = {}
        for s in world.shapes:
            t = _template(s, top, bottom, left, right, h, w)
            ious[s] = float(np.minimum(t, m).sum() / np.maximum(t, m).sum())
        bh, bw = bottom - top, right - left
        out.append(dict(area=area, box=(top, bottom, left, right), ious=ious,
                        aspect=min(bh, bw) / max(bh, bw), mask=m))
    return out


def best_blob(image, label: str, world: World = WORLD) -> tuple[float, dict | None]:
    """The blob of `label`'s colour that looks most like `label`: (its presence score, the blob as `blobs` gives
    it), or (0.0, None) when there is no blob of that colour."""
    label = _check_label(label, world)
    colour, shape = label.split()
    scored = []
    for b in blobs(image, colour, world):
        size = min(1.0, b["area"] / FULL_AREA)
        aspect = float(np.clip((b["aspect"] - 0.4) / 0.3, 0, 1))
        fit = b["ious"][shape] * (1.0 if max(b["ious"], key=b["ious"].get) == shape else 0.5)
        scored.append((size * aspect * fit, b))
    return max(scored, key=lambda sb: sb[0], default=(0.0, None))


def presence(image, label: str, world: World = WORLD) -> float:
    """How present the object `label` ("red circle", or "a red circle") is in `image`: a score in [0, 1]."""
    return best_blob(image, label, world)[0]


def is_present(image, label: str, threshold: float = THRESHOLD, world: World = WORLD) -> bool:
    """Yes/no: is `label` in the image? (presence >= threshold)."""
    return presence(image, label, world) >= threshold


def detect(image, world: World = WORLD) -> dict[str, float]:
    """Presence of every one of the world's labels: {label: score}."""
    return {lab: presence(image, lab, world) for lab in world.labels}


def clean_erase(image, mask, min_overlap: float = 0.25, world: World = WORLD) -> bool:
    """After removing an object: True when no object-coloured blob of any colour covers at least
    `min_overlap` of the old object's mask (bool (32, 32)): the place went back to background rather
    than holding some new object."""
    m = np.asarray(mask).astype(bool)
    if m.shape != (SIZE, SIZE):
        raise ValueError(f"the mask must be the world's ({SIZE}, {SIZE}) ground-truth mask, got shape {m.shape}")
    if not m.any():
        raise ValueError("the mask is empty: pass the removed object's ground-truth mask")
    for colour in world.colours:
        for b in blobs(image, colour, world):
            if (b["mask"] & m).sum() >= min_overlap * m.sum():
                return False
    return True


def _check_label(label: str, world: World = WORLD) -> str:
    if not isinstance(label, str):
        raise TypeError(f"label must be a string like 'red circle', got {type(label).__name__}")
    text = label.strip().lower()
    text = text[2:] if text.startswith("a ") else text
    if text not in world.labels:
        raise ValueError(f"unknown object {label!r}; the shapes world knows {', '.join(world.labels)}")
    return text
