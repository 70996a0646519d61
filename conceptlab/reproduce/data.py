"""The inputs of the experiments: the toy worlds by default, a folder of your own with `--data`.

Folders (`--data DIR`):
- images by class (removal, weakconcept10): `DIR/<class>/<name>.jpg` (or .png, .jpeg, .webp, .bmp); the
  folder name is the class ("dog", "Van Gogh").
- images with instance masks (localization, concept-tokens): `DIR/<name>.png` beside `DIR/<name>.masks.npz`,
  one boolean array (N, H, W) named "masks" at the image's size, one mask per object (COCO or CLEVR
  instance masks written out; `write_toy_folder` writes the toy world in this form).
- sounds by class (sound-removal): `DIR/<class>/<name>.wav` (AVE: one folder per event class).
An item's id is its path inside DIR without the suffix, so a rerun finds its rows whatever the listing order.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from ..course import IMAGE_SUFFIXES
from ..worlds import shapes

SOUND_SUFFIXES = (".wav",)


def safe_id(text: str) -> str:
    """A file-safe item id from a relative path: spaces and odd characters become '_'."""
    return re.sub(r"[^A-Za-z0-9_.\-/]", "_", text)


def check_folder(data: str) -> Path:
    path = Path(data).expanduser()
    if not path.is_dir():
        raise SystemExit(f"--data {data}: no such folder (give a folder of class/<name>.jpg, or leave --data out "
                         f"to use the toy world)")
    return path


def by_class(data: str, suffixes: tuple[str, ...], what: str) -> list[dict]:
    """DIR/<class>/<file> -> items {"id", "path", "label"} in sorted order."""
    root = check_folder(data)
    files = sorted(f for f in root.glob("*/*") if f.suffix.lower() in suffixes)
    if not files:
        raise SystemExit(f"--data {data} holds no {what} in class folders ({root}/<class>/<name>"
                         f"{suffixes[0]}); the folder name is the class")
    return [dict(id=safe_id(str(f.relative_to(root).with_suffix(""))), path=str(f), label=f.parent.name)
            for f in files]


def with_masks(data: str) -> list[dict]:
    """DIR/<name>.png + DIR/<name>.masks.npz -> items {"id", "path", "masks"}."""
    root = check_folder(data)
    files = sorted(f for f in root.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    items = []
    for f in files:
        masks = f.with_suffix(".masks.npz")
        if not masks.exists():
            raise SystemExit(f"{f} has no {masks.name}: each image needs its instance masks beside it (a boolean "
                             f"array (N, H, W) named 'masks'; see conceptlab.reproduce.data)")
        items.append(dict(id=safe_id(str(f.relative_to(root).with_suffix(""))), path=str(f), masks=str(masks)))
    if not items:
        raise SystemExit(f"--data {data} holds no image with masks (<name>.png beside <name>.masks.npz)")
    return items


def read_masks(item: dict, image: np.ndarray) -> np.ndarray:
    masks = np.load(item["masks"])["masks"].astype(bool)
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2] or len(masks) == 0:
        raise ValueError(f"{item['masks']}: masks must be (N, H, W) at the image's size {image.shape[:2]} with "
                         f"N >= 1, got {masks.shape}")
    return masks


def toy_scene_items(n: int, min_objects: int = 1, split: str = "heldout", start: int = 0,
                    world: shapes.World = shapes.WORLD) -> list[dict]:
    """The first n scenes of a split of `world` from index `start` with at least min_objects objects, by index."""
    items, i = [], start
    while len(items) < n:
        if len(world.scene(split, i).labels) >= min_objects:
            items.append(dict(id=f"{split}/{i:05d}", index=i))
        i += 1
    return items


def write_toy_folder(out: Path, n: int, min_objects: int = 2, size: int | None = None) -> Path:
    """Held-out toy scenes as an image folder with masks (the `with_masks` form), optionally resized to size x
    size (nearest for masks): data to try the folder path on, or a real model on scenes whose truth is known."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for item in toy_scene_items(n, min_objects):
        s = shapes.scene("heldout", item["index"])
        image, masks = Image.fromarray(s.image), np.stack(s.masks)
        if size:
            image = image.resize((size, size), Image.BICUBIC)
            masks = np.stack([np.asarray(Image.fromarray(m).resize((size, size), Image.NEAREST)) for m in masks])
        name = item["id"].split("/")[-1]
        image.save(out / f"{name}.png")
        np.savez_compressed(out / f"{name}.masks.npz", masks=masks.astype(bool))
    return out
