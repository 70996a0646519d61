"""What the course's notebooks need to run on any model by changing MODEL: their inputs, a presence judge and
check cells that know the model.

    subjects = course.subjects(model, 8)              # toy: held-out scenes; real: your IMAGES, or the model's own
    course.presence(model, image, "dog")              # toy: the world's oracle; real: an open-vocabulary detector
    course.check(model, [("removed", rate, ">=", 0.8, "toy real")])   # asserts where the claim applies

Inputs by tier (`model.tier`):
- "toy" (toy-shapes): the shapes world's scenes, exactly as `shapes.scenes` gives them (masks and labels known).
- "real" or "random" (a checkpoint, or a random-weight pipeline of a real shape): the user's own images (a path,
  a folder, a list of paths or PIL images; the folder name of `class/x.jpg` is its label) brought to the
  model's native size by resize and centre crop (said once); with none, pictures the model generates from
  the papers' prompts: removal subjects "a photo of a [class]" at guidance 7.5 over ten COCO classes (the
  paper's Fig. 3 uses 95 COCO images of 10 classes it does not list: these ten are our choice), weak
  concepts "[class]" at guidance 1 over WeakConcept-10's classes (ScalingConcept Sec. 4).

Check cells: on toy models every claim is asserted (the world's ground truth applies); on a real checkpoint
the claims whose tiers include "real" (the papers' own numbers) are asserted and the others printed as
verdicts; on random weights nothing is asserted, every claim is reported.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .worlds import oracle, shapes

COCO_CLASSES = ("dog", "cat", "horse", "bird", "car", "bus", "airplane", "bicycle", "clock", "umbrella")
WEAK_CLASSES = ("sofa", "banana", "cat", "flower", "Van Gogh", "ship", "Statue of Liberty", "fruits", "forest", "horse")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class Subject:
    """One input of a notebook on a real model, with the face of a shapes-world Scene: `image` (H, W, 3) uint8 at
    the model's size, `caption`, `labels` (the concepts it holds), `masks` (N, H, W) bool where known (else an
    empty stack), `background` (None where unknown), and where it came from."""
    image: np.ndarray
    caption: str
    labels: list[str]
    source: str
    masks: np.ndarray = field(default=None)
    background: str | None = None

    def __post_init__(self):
        if self.masks is None:
            self.masks = np.zeros((0, *self.image.shape[:2]), bool)

    def pil(self) -> Image.Image:
        return Image.fromarray(self.image)


def fit(image, size: tuple[int, int]) -> tuple[Image.Image, str | None]:
    """Bring an image to (height, width) `size`: scale so that it covers the size, then crop the centre.
    -> (RGB PIL image, a note saying what was done, or None when nothing was)."""
    if isinstance(image, (str, Path)):
        image = Image.open(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (3, 4):
            raise ValueError(f"a numpy image must be (H, W, 3) uint8, got {image.dtype} {image.shape}")
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a path, a PIL image or a uint8 (H, W, 3) array, got {type(image).__name__}")
    image = image.convert("RGB")
    h, w = size
    if image.size == (w, h):
        return image, None
    W, H = image.size
    s = max(w / W, h / H)
    scaled = image.resize((max(w, round(W * s)), max(h, round(H * s))), Image.BICUBIC if s > 1 else Image.LANCZOS)
    left, top = (scaled.size[0] - w) // 2, (scaled.size[1] - h) // 2
    return scaled.crop((left, top, left + w, top + h)), f"{W}x{H} resized and centre-cropped to {w}x{h}"


def at_model_size(scene, model):
    """A shapes-world scene at the model's native size: the image scaled up (nearest neighbour, so the world's
    pixels stay exact) and centre-cropped like `fit`, its masks likewise: a real model's input with ground truth.
    Unchanged on toy models (the scene itself)."""
    if model.tier == "toy" or tuple(scene.image.shape[:2]) == tuple(model.image_size):
        return scene
    h, w = model.image_size
    H, W = scene.image.shape[:2]
    s = max(h / H, w / W)
    size = (max(w, round(W * s)), max(h, round(H * s)))
    left, top = (size[0] - w) // 2, (size[1] - h) // 2
    grow = lambda a: np.asarray(Image.fromarray(a).resize(size, Image.NEAREST).crop((left, top, left + w, top + h)))
    masks = np.stack([grow(m.astype(np.uint8) * 255) > 127 for m in scene.masks]) if len(scene.masks) else None
    return Subject(grow(scene.image), scene.caption, list(scene.labels), "the shapes world, scaled to the model's size",
                   masks, scene.background)


def read_images(source) -> list[tuple[Image.Image, str | None, str]]:
    """A path, a folder (searched recursively), a PIL image or a list of them -> [(image, label, where)].
    The label is the parent folder's name for files under a folder (`class/x.jpg`), else None."""
    items = source if isinstance(source, (list, tuple)) else [source]
    out = []
    for item in items:
        if isinstance(item, Image.Image):
            out.append((item, None, "a PIL image"))
            continue
        if not isinstance(item, (str, Path)):
            raise TypeError(f"IMAGES takes paths, folders or PIL images, got {type(item).__name__}")
        p = Path(item).expanduser()
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ValueError(f"the folder {p} holds no image ({', '.join(IMAGE_SUFFIXES)})")
            out += [(Image.open(f), f.parent.name if f.parent != p else None, str(f)) for f in files]
        elif p.is_file():
            out.append((Image.open(p), None, str(p)))
        else:
            raise FileNotFoundError(f"no image at {p}: give a path to an image, a folder of images, or None "
                                    f"to let the model generate its own inputs")
    return out


def subjects(model, n: int, kind: str = "scenes", images=None, labels=None, split: str = "heldout", start: int = 0,
             n_objects: int | None = None, steps: int = 25, seed: int = 0, verbose: bool = True) -> list:
    """n inputs for a notebook. Toy model: `shapes.scenes(split, n, start, n_objects)` (kind "scenes") or the
    weak-concept scenes `shapes.weak_scene(start + i)` (kind "weak"). Real model: `images` (see read_images),
    labelled by `labels` (one for all, or one each) or their folder; else the model's own pictures of the
    papers' prompts (module docstring), `steps` DDIM steps, seeds seed, seed + 1, ..."""
    if kind not in ("scenes", "weak"):
        raise ValueError(f"kind must be 'scenes' (removal and scaling subjects) or 'weak' (weak concepts), got {kind!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if model.tier == "toy":
        if images is not None:
            raise ValueError("IMAGES are for real models; the toy model takes the shapes world's scenes (set IMAGES = None)")
        if kind == "weak":
            return [shapes.weak_scene(start + i) for i in range(n)]
        return shapes.scenes(split, n, start=start, n_objects=n_objects)
    size = model.image_size
    if images is not None:
        every = read_images(images)
        found = [every[(start + i) % len(every)] for i in range(min(n, len(every)))]   # start counts in a cycle
        names = [labels] * len(found) if labels is None or isinstance(labels, str) else list(labels)
        if len(names) != len(found):
            raise ValueError(f"{len(found)} images but {len(names)} labels: give one label for all or one per image")
        out, notes = [], set()
        for (im, folder_label, where), label in zip(found, names):
            label = label or folder_label
            if not label:
                raise ValueError(f"{where} has no label: put it in a folder named after its concept (dog/x.jpg) "
                                 f"or give LABELS")
            fitted, note = fit(im, size)
            notes.add(note)
            out.append(Subject(np.asarray(fitted), f"a photo of a {label}", [label], where))
        if verbose and notes - {None}:
            print(f"inputs: {'; '.join(sorted(notes - {None}))} (the model's native size)")
        return out
    classes = COCO_CLASSES if kind == "scenes" else WEAK_CLASSES
    picked = [classes[(start + i) % len(classes)] for i in range(n)]
    prompts = [f"a photo of a {c}" if kind == "scenes" else c for c in picked]
    guidance = 7.5 if kind == "scenes" else 1.0
    pictures = [model.generate(p, steps=steps, guidance=guidance, seed=seed + start + i) for i, p in enumerate(prompts)]
    if verbose:
        print(f"inputs: {n} pictures generated by {model.name} from the papers' prompts "
              f"({'removal subjects, guidance 7.5' if kind == 'scenes' else 'weak concepts, guidance 1'})")
    return [Subject(np.asarray(im), p, [c], f"generated: {p!r}, guidance {guidance:g}, seed {seed + start + i}")
            for i, (im, p, c) in enumerate(zip(pictures, prompts, picked))]


def presence(model, image, label: str, detector=None) -> float:
    """Is `label` in `image`? A score in [0, 1]. Toy models: the shapes world's oracle (exact). Real models: an
    open-vocabulary detector (`conceptlab.detect`, OWLv2 by default; the paper uses Grounding DINO), its highest
    box score for the label."""
    if model.tier == "toy" and detector is None:
        return oracle.presence(image, label)
    if detector is None:
        raise ValueError("presence on a real model needs a detector: detector = conceptlab.detect.load_detector(DETECTOR)")
    return detector.presence(image, label)


def is_present(model, image, label: str, detector=None) -> bool:
    score = presence(model, image, label, detector)           # refuses a real model without a detector
    return score >= (oracle.THRESHOLD if detector is None else detector.threshold)


OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}


def sample_bound(rate: float, n: int, alpha: float = 0.01) -> float:
    """The least share a sample of n scenes reaches with chance >= 1 - alpha when the true rate is `rate` (a
    benchmark's, measured on many scenes): a check cell asserts a small sample against this, not against the
    big sample's number itself. The alpha quantile of Binomial(n, rate), over n."""
    from scipy.stats import binom

    if not 0 <= rate <= 1:
        raise ValueError(f"rate is a share in [0, 1], got {rate}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return float(binom.ppf(alpha, n, rate)) / n


def check(model, claims: list[tuple]) -> dict[str, bool]:
    """The check cell. claims: (what, measured, op, bound, tiers) with op one of >=, >, <=, <, == and tiers a
    string naming where the claim must hold: "toy" (the toy world's measured rate) and/or "real" (a number the
    paper gives for real checkpoints). Prints one verdict a claim; raises AssertionError for a failed claim
    that applies to this model's tier. Random weights: reported only. -> {what: held}."""
    tier = model.tier
    held, failed = {}, []
    for what, measured, op, bound, tiers in claims:
        if op not in OPS:
            raise ValueError(f"unknown comparison {op!r} in claim {what!r}; use one of {list(OPS)}")
        ok = bool(OPS[op](measured, bound))
        applies = tier in tiers.split()
        held[what] = ok
        value, bar = (f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v) for v in (measured, bound))
        verdict = ("holds" if ok else "FAILS") + ("" if applies else " (reported, not asserted)")
        print(f"{what}: {value} {op} {bar}  {verdict}")
        if applies and not ok:
            failed.append(what)
    if failed:
        raise AssertionError(f"on {model.name} ({tier}) these claims failed: {failed}")
    print("checks passed" if tier == "toy" else f"checks done on a {tier} model ({model.name})")
    return held
