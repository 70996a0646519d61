"""The shapes world: seeded synthetic scenes that know their own ground truth.

A scene is a 32x32 RGB picture of one to three objects (a shape in a colour) on a background,
with its caption ("a red circle and a blue square on grass"), and per object its label and its
mask. Because the world is synthetic, "is the red circle still there?" has an exact answer: the
`oracle` module measures it on any image, generated or decoded.

Splits are fixed: ``scene("train", i)`` and ``scene("heldout", i)`` draw from independent seed
streams, so the held-out scenes are never seen in training.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

SIZE = 32                      # pixels per side
SUPERSAMPLE = 4                # anti-aliasing: render at 4x, average down
SHAPES = ("circle", "square", "triangle")
COLOURS = {                    # RGB, chosen far from every background and from each other
    "red": (220, 40, 40),
    "yellow": (245, 215, 40),
    "blue": (40, 70, 225),
    "black": (25, 25, 25),
}
BACKGROUNDS = {                # (top colour, bottom colour): a soft vertical gradient
    "sky": ((120, 175, 235), (175, 215, 245)),
    "grass": ((90, 170, 75), (60, 135, 50)),
    "sand": ((230, 205, 160), (205, 180, 135)),
}
# World v2 (issue 28, being trained; the shipped models know v1): one colour and one shape more.
SHAPES_V2 = SHAPES + ("diamond",)
COLOURS_V2 = {**COLOURS, "purple": (150, 60, 190)}
PALETTE = COLOURS_V2           # every colour either world paints
SPLITS = {"train": 0, "heldout": 1, "weak": 2}
RADIUS = (4.0, 7.5)            # object half-size in pixels


@dataclass(frozen=True)
class ShapeObject:
    """One object: `shape` in `colour`, centred at (cx, cy) in pixels, half-size `r`.

    `strength` in (0, 1] blends the object with the background (1 = solid; weak scenes use less).
    """
    shape: str
    colour: str
    cx: float
    cy: float
    r: float
    strength: float = 1.0

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def phrase(self) -> str:
        return f"a {self.label}"


@dataclass
class Scene:
    """A rendered scene. `image`: uint8 array (H, W, 3); `masks`: bool arrays (H, W), one per object."""
    background: str
    objects: list[ShapeObject]
    image: np.ndarray
    masks: list[np.ndarray]
    weakness: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def caption(self) -> str:
        return caption_for(self.objects, self.background)

    @property
    def labels(self) -> list[str]:
        return [o.label for o in self.objects]

    def mask_of(self, label: str) -> np.ndarray:
        """The (H, W) bool mask of the object called `label` ("red circle")."""
        for o, m in zip(self.objects, self.masks):
            if o.label == label:
                return m
        raise KeyError(f"no {label!r} in this scene; it has {self.labels}")

    def alone(self, i: int) -> np.ndarray:
        """Object i drawn alone on the scene's background (uint8 (H, W, 3)): the concept's region as the world
        knows it, for scores that compare a concept with its generations (metrics.concept_scores' regions)."""
        if not 0 <= i < len(self.objects):
            raise IndexError(f"this scene has {len(self.objects)} objects; object {i} does not exist")
        return render(self.background, [self.objects[i]])[0]

    def pil(self) -> Image.Image:
        return Image.fromarray(self.image)


def caption_for(objects, background: str | None, sizes: list[bool] | None = None) -> str:
    """"a red circle", "a red circle and a blue square on grass", "a, b and c on sand". sizes: per object,
    whether to say its size word when it has one ("a big red circle"; see `size_word`)."""
    phrases = [o.phrase if not (sizes and sizes[k] and size_word(o)) else f"a {size_word(o)} {o.label}"
               for k, o in enumerate(objects)]
    if len(phrases) <= 2:
        text = " and ".join(phrases)
    else:
        text = ", ".join(phrases[:-1]) + " and " + phrases[-1]
    if background:
        text = f"{text} on {background}" if text else background
    return text


# ----------------------------------------------------------------------------------- rendering
def _grid(size: int = SIZE, ss: int = SUPERSAMPLE):
    """Sub-pixel centre coordinates (size*ss, size*ss) in pixel units."""
    c = (np.arange(size * ss) + 0.5) / ss
    return np.meshgrid(c, c)          # x, y


_X, _Y = _grid()


def _inside(shape: str, cx: float, cy: float, r: float, x=_X, y=_Y) -> np.ndarray:
    """Boolean coverage of a shape on a sub-pixel grid. Sizes are set so the three shapes of the
    same `r` have similar areas (square side 1.8 r, triangle height 2.2 r)."""
    if shape == "circle":
        return (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    if shape == "square":
        h = 0.9 * r
        return (np.abs(x - cx) <= h) & (np.abs(y - cy) <= h)
    if shape == "triangle":           # apex up; base 2.4 r wide at cy + r, apex at cy - 1.2 r
        top, bottom, half = cy - 1.2 * r, cy + r, 1.2 * r
        t = (y - top) / (bottom - top)               # 0 at apex, 1 at base
        return (t >= 0) & (t <= 1) & (np.abs(x - cx) <= half * t)
    if shape == "diamond":            # a square on its corner: half-diagonal 1.27 r (the same area as the square)
        h = 1.27 * r
        return np.abs(x - cx) + np.abs(y - cy) <= h
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES_V2}")


def coverage(shape: str, cx: float, cy: float, r: float, size: int = SIZE) -> np.ndarray:
    """Fraction of each pixel covered by the shape, (size, size) float in [0, 1]."""
    x, y = (_X, _Y) if size == SIZE else _grid(size)
    fine = _inside(shape, cx, cy, r, x, y).astype(np.float32)
    return fine.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))


def background_image(name: str, size: int = SIZE) -> np.ndarray:
    """(size, size, 3) float background with a vertical gradient."""
    top, bottom = (np.array(c, dtype=np.float32) for c in BACKGROUNDS[name])
    t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    return np.broadcast_to(top * (1 - t) + bottom * t, (size, size, 3)).copy()


def render(background: str, objects: list[ShapeObject]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Paint objects in order over the background (a later object covers an earlier one). Returns (uint8 image,
    bool masks): each mask is where its object is visible (its coverage, less what later objects hide, >= 0.5)."""
    img = background_image(background)
    covs = [coverage(o.shape, o.cx, o.cy, o.r) for o in objects]
    for o, cov in zip(objects, covs):
        a = (cov * o.strength)[..., None]
        img = img * (1 - a) + np.array(PALETTE[o.colour], np.float32) * a
    masks = []
    for k, cov in enumerate(covs):
        visible = cov.copy()
        for later in covs[k + 1:]:
            visible *= 1 - later
        masks.append(visible >= 0.5)
    for k in range(len(masks) - 2, -1, -1):           # a pixel half under a later object is the later one's
        masks[k] &= ~np.logical_or.reduce(masks[k + 1:])
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), masks


# ----------------------------------------------------------------------------------- sampling
def _rng(split: str, index: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLITS)}")
    if index < 0:
        raise ValueError(f"scene index must be >= 0, got {index}")
    return np.random.default_rng(np.random.SeedSequence([20241122, SPLITS[split], index]))


def _place(rng, n: int, margin: float = 1.0, tries: int = 100) -> list[tuple[float, float, float]]:
    """n non-overlapping (cx, cy, r) inside the frame; shrinks objects if the frame is crowded."""
    lo, hi = RADIUS
    for attempt in range(tries):
        hi_now = hi - (hi - lo) * min(1.0, attempt / 20)
        out = []
        for _ in range(50 * n):
            r = rng.uniform(lo, max(lo, hi_now))
            reach = 1.25 * r + 1                           # the triangle's apex reaches 1.2 r
            cx, cy = rng.uniform(reach, SIZE - reach, size=2)
            if all(np.hypot(cx - x, cy - y) > 1.3 * (r + q) + margin for x, y, q in out):
                out.append((cx, cy, r))
                if len(out) == n:
                    return out
    raise RuntimeError(f"could not place {n} objects in a {SIZE}x{SIZE} frame")


def random_scene(rng: np.random.Generator, n_objects: int | None = None) -> Scene:
    """A random world-v1 scene with 1-3 distinct objects (no two with the same label), apart from each other."""
    n = int(rng.integers(1, 4)) if n_objects is None else n_objects
    if not 1 <= n <= 3:
        raise ValueError(f"a scene has 1 to 3 objects, got {n}")
    background = str(rng.choice(list(BACKGROUNDS)))
    kinds = V1.labels
    labels = rng.choice(len(kinds), size=n, replace=False)
    objects = []
    for k, (cx, cy, r) in zip(labels, _place(rng, n)):
        colour, shape = kinds[k].split()
        objects.append(ShapeObject(shape, colour, float(cx), float(cy), float(r)))
    image, masks = render(background, objects)
    return Scene(background, objects, image, masks)


def scene(split: str, index: int, n_objects: int | None = None) -> Scene:
    """Scene number `index` of a fixed split ("train", "heldout" or "weak") of the embedded model's world
    (`WORLD`): the same on every machine."""
    return WORLD.scene(split, index, n_objects)


def scenes(split: str, n: int, start: int = 0, n_objects: int | None = None) -> list[Scene]:
    """Scenes start..start+n-1 of a split of `WORLD`."""
    return WORLD.scenes(split, n, start, n_objects)


WEAKNESSES = ("faded", "partial", "low-contrast", "small")


def weak_scene(index: int, weakness: str | None = None, world: "World | None" = None) -> Scene:
    """The toy analog of WeakConcept-10: one object rendered weakly, captioned by its phrase alone.

    faded: painted at 35-55% opacity over the background; low-contrast: at 25-40% opacity (its colour
    barely leaves the background's); partial: its centre lies outside the frame, so more than half is cut
    off; small: half-size 2.5-3.2 px instead of 4-7.5.
    """
    rng = _rng("weak", index)
    weakness = weakness or WEAKNESSES[index % len(WEAKNESSES)]
    if weakness not in WEAKNESSES:
        raise ValueError(f"unknown weakness {weakness!r}; expected one of {WEAKNESSES}")
    background = str(rng.choice(list(BACKGROUNDS)))
    kinds = (world or WORLD).labels
    colour, shape = kinds[int(rng.integers(len(kinds)))].split()
    r = float(rng.uniform(5.0, 7.0))
    cx, cy = rng.uniform(10, SIZE - 10, size=2)
    strength = 1.0
    if weakness == "faded":
        strength = float(rng.uniform(0.35, 0.55))
    elif weakness == "low-contrast":
        strength = float(rng.uniform(0.25, 0.4))
    elif weakness == "partial":
        side = int(rng.integers(4))
        off = r * float(rng.uniform(0.2, 0.6))               # centre beyond the edge by this much
        cx, cy = [(-off, cy), (SIZE + off, cy), (cx, -off), (cx, SIZE + off)][side]
    elif weakness == "small":
        r = float(rng.uniform(2.5, 3.2))
    obj = ShapeObject(shape, colour, float(cx), float(cy), r, strength)
    image, masks = render(background, [obj])
    return Scene(background, [obj], image, masks, weakness=weakness)


# ----------------------------------------------------------------------------------- world v2
@dataclass(frozen=True)
class World:
    """A version of the shapes world: its kinds of object and how its scenes are drawn.

    v2 (issue 28) adds, beside v1's 12 kinds on separate places: a colour more (15 kinds); sizes
    that captions may name (`size_word`); objects that touch or overlap (a later object hides part of an
    earlier one, and the masks say what is visible); and in the train split, scenes with no object at all.
    The splits keep their seeds: v2's scene("heldout", i) is never seen in its training either.
    """
    version: int
    colours: tuple[str, ...]
    shapes: tuple[str, ...]
    radius: tuple[float, float] = RADIUS
    empty: float = 0.0            # share of train scenes with no object
    close: float = 0.0            # chance that an object is placed against one already there
    min_visible: float = 0.7      # an overlapped object keeps at least this share of its area in view

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(f"{c} {s}" for c in self.colours for s in self.shapes)

    def scene(self, split: str, index: int, n_objects: int | None = None) -> Scene:
        """Scene number `index` of a fixed split ("train", "heldout" or "weak")."""
        if split == "weak":
            if n_objects not in (None, 1):
                raise ValueError(f"a weak scene has one object, got n_objects={n_objects}")
            return self.weak_scene(index)
        if self.version == 1:
            return random_scene(_rng(split, index), n_objects)
        return random_scene_v2(_rng(split, index), self, n_objects, empty=self.empty if split == "train" else 0.0)

    def scenes(self, split: str, n: int, start: int = 0, n_objects: int | None = None) -> list[Scene]:
        return [self.scene(split, i, n_objects) for i in range(start, start + n)]

    def weak_scene(self, index: int, weakness: str | None = None) -> Scene:
        """Weak scene number `index` (see the module's weak_scene), of this world's kinds."""
        return weak_scene(index, weakness, world=self)


V1 = World(1, tuple(COLOURS), SHAPES)
# v2 draws v1's three shapes: with the diamond beside the square (benchmarks/world_v2_clip_pilot.py), toy-clip and
# the UNet trained on v2 learnt colours and not shapes; the renderer and the vocabulary keep the diamond.
V2 = World(2, tuple(COLOURS_V2), SHAPES, radius=(4.0, 8.0), empty=0.15, close=0.3)
SIZE_WORDS = {"small": 5.0, "big": 7.0}     # half-size below / above which a caption may say it
WORLDS = {1: V1, 2: V2}
# The world the embedded toy-shapes was trained on (its TRAINING.json's world_version): scene(), scenes(), LABELS,
# the weak scenes and the oracle's default are its. tests/test_world_v2.py checks that the two agree.
WORLD = V1
LABELS = WORLD.labels                       # its object classes


def world_of(training: dict | None, default: World | None = None) -> World:
    """The world a toy model was trained on, from its recipe (Model.training, TRAINING.json): v1 where it names
    none (a recipe from before world v2). A model with no shapes world of its own (a real model, which has no
    recipe, or toy-sounds) gets `default` (e.g. WORLD, whose scenes a run then takes), or ValueError without one."""
    if training is None or training.get("world") == "sounds":
        if default is not None:
            return default
        if training is None:
            raise ValueError("this model has no training recipe (TRAINING.json): it is not an embedded toy model, "
                             "so no shapes world is its own; judge its pictures with a detector")
        raise ValueError("this is a toy-sounds model: it knows the sounds world, not a shapes world")
    version = training.get("world_version", 1)
    if version not in WORLDS:
        raise ValueError(f"this toy model was trained on shapes world v{version}; this conceptlab knows "
                         f"{sorted(WORLDS)}: update conceptlab")
    return WORLDS[version]


def size_word(obj: ShapeObject) -> str | None:
    """"small", "big" or None (a middling object, which a caption does not size)."""
    if obj.r < SIZE_WORDS["small"]:
        return "small"
    if obj.r > SIZE_WORDS["big"]:
        return "big"
    return None


def _place_v2(rng, world: World, colours: list[str]) -> list[tuple[float, float, float]] | None:
    """One (cx, cy, r) per object: apart from the others, or (with chance world.close) set against one already
    placed of another colour (two touching blobs of one colour would read as one object), touching it or
    overlapping it a little. None when this draw does not fit; the caller draws again."""
    lo, hi = world.radius
    out: list[tuple[float, float, float]] = []
    for k in range(len(colours)):
        others = [j for j in range(k) if colours[j] != colours[k]]
        for _ in range(200):
            r = float(rng.uniform(lo, hi))
            reach = 1.27 * r + 0.5
            if others and rng.random() < world.close:
                x0, y0, r0 = out[others[int(rng.integers(len(others)))]]
                angle = rng.uniform(0, 2 * np.pi)
                d = (r + r0) * rng.uniform(0.75, 1.1)             # < 1: overlapping, about 1: touching
                cx, cy = x0 + d * np.cos(angle), y0 + d * np.sin(angle)
                if not (reach <= cx <= SIZE - reach and reach <= cy <= SIZE - reach):
                    continue
            else:
                cx, cy = rng.uniform(reach, SIZE - reach, size=2)
                if not all(np.hypot(cx - x, cy - y) > 1.3 * (r + q) + 1 for x, y, q in out):
                    continue
            out.append((float(cx), float(cy), r))
            break
        else:
            return None
    return out


def random_scene_v2(rng: np.random.Generator, world: World, n_objects: int | None = None,
                    empty: float = 0.0) -> Scene:
    """A v2 scene: none (with chance `empty`, when n_objects is None) or 1-3 distinct objects, which may touch
    or overlap; each keeps at least world.min_visible of its area in view."""
    if n_objects is None:
        n = 0 if rng.random() < empty else int(rng.integers(1, 4))
    else:
        n = n_objects
    if not 0 <= n <= 3:
        raise ValueError(f"a scene has 0 to 3 objects, got {n}")
    background = str(rng.choice(list(BACKGROUNDS)))
    labels = world.labels
    for _ in range(100):
        kinds = [labels[int(k)].split() for k in rng.choice(len(labels), size=n, replace=False)]
        places = _place_v2(rng, world, [c for c, _ in kinds])
        if places is None:
            continue
        objects = [ShapeObject(s, c, cx, cy, r) for (c, s), (cx, cy, r) in zip(kinds, places)]
        image, masks = render(background, objects)
        full = [coverage(o.shape, o.cx, o.cy, o.r) >= 0.5 for o in objects]
        grown = [ndimage.binary_dilation(m) for m in masks]
        same_touch = any(objects[i].colour == objects[j].colour and (grown[i] & masks[j]).any()
                         for i in range(n) for j in range(i + 1, n))
        if not same_touch and all(m.sum() >= world.min_visible * f.sum() for m, f in zip(masks, full)):
            return Scene(background, objects, image, masks)
    raise RuntimeError(f"could not place {n} objects in a {SIZE}x{SIZE} frame")
