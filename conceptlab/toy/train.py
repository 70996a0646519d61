"""Train the embedded models from scratch, seeded and resumable.

    python -m conceptlab.toy.train shapes            # VAE, then UNet + text encoder, then toy-clip
    python -m conceptlab.toy.train shapes --stage clip --clip-steps 3000
    python -m conceptlab.toy.train shapes --smoke    # a few steps of every stage into a temp folder
    python -m conceptlab.toy.train sounds            # toy-sounds: VAE, then UNet + text encoder (no clip)
    python -m conceptlab.toy.train sounds --stage decoder   # then fine-tune its VAE decoder alone

The UNet's loss is epsilon prediction (min-SNR-5 weighted) plus, with weight --grounding, TokenCompose's
token loss that ties each object word's cross-attention to its mask. The shipped toy-shapes was made by
two runs, both listed with their wall times under "unet_history" in its TRAINING.json:
    python -m conceptlab.toy.train shapes --grounding 0                                   # steps 0-4500
    python -m conceptlab.toy.train shapes --stage unet --unet-steps 7500 --grounding 0.1  # steps 4500-7500

The shipped toy-sounds came from four runs (its TRAINING.json keeps each, with wall times):
    python -m conceptlab.toy.train sounds --vae-steps 700 --unet-steps 4000 --batch 32
    python -m conceptlab.toy.train sounds --stage unet --unet-steps 5500 --batch 32 --full-captions 0.2
    python -m conceptlab.toy.train sounds --stage unet --unet-steps 7000 --batch 32 --full-captions 0.0
    python -m conceptlab.toy.train sounds --stage decoder --decoder-steps 1500 --band-weight 1.0
The two continuations teach that a source's phrase means "this is in it", not "only this": after the
first run, whose captions mostly name every source, scaling one phrase up repainted the other sources.

Checkpoints (weights, EMA, optimizer, RNG state) go to --workdir every 250 steps; running the same
command again resumes where it stopped. The finished pipelines are written to --out
(by default the package's own `toy/weights/`, which `conceptlab.load("toy-shapes")` reads).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import hooks
from .. import audio
from ..worlds import shapes, sounds
from . import nets, vocab

WEIGHTS = Path(__file__).parent / "weights"


# ------------------------------------------------------------------------------------------ data
def world_data(n: int, workdir: Path, world: shapes.World = shapes.V1) -> dict:
    """The first n train scenes of a world version: uint8 images (n, 3, 32, 32), object labels, half-sizes,
    backgrounds, and object maps uint8 (n, 32, 32) (0: background, k: where the k-th object is visible)."""
    digest = hashlib.sha256(repr(world).encode()).hexdigest()[:8]       # a changed world never reads a stale cache
    cache = workdir / (f"train_{n}_v2.npz" if world.version == 1 else f"train_{n}_world{world.version}-{digest}.npz")
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return dict(images=z["images"], labels=[l.split("|") if l else [] for l in z["labels"]],
                    radii=[[float(r) for r in l.split("|")] if l else [] for l in z["radii"]] if world.version > 1 else None,
                    backgrounds=[str(b) for b in z["backgrounds"]], objects=z["objects"])
    images, labels, radii, backgrounds, objects = [], [], [], [], []
    for i in tqdm(range(n), desc="rendering the train split", mininterval=5):
        s = world.scene("train", i)
        images.append(s.image.transpose(2, 0, 1))
        labels.append(s.labels)
        radii.append([o.r for o in s.objects])
        backgrounds.append(s.background)
        omap = np.zeros((shapes.SIZE, shapes.SIZE), np.uint8)
        for k, m in enumerate(s.masks):
            omap[m] = k + 1
        objects.append(omap)
    out = dict(images=np.stack(images), labels=labels, radii=radii if world.version > 1 else None, backgrounds=backgrounds,
               objects=np.stack(objects))
    workdir.mkdir(parents=True, exist_ok=True)
    np.savez(cache, images=out["images"], labels=np.array(["|".join(l) for l in labels]), backgrounds=np.array(backgrounds),
             radii=np.array(["|".join(f"{r:.4f}" for r in rs) for rs in radii]), objects=out["objects"])
    return out


def to_float(images_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images_u8).float() / 127.5 - 1


def sound_data(n: int, workdir: Path) -> dict:
    """The first n train mixtures as toy-sounds' spectrogram images, float16 (n, 1, 208, 64) in about
    [-1, 1] (audio.spectrogram_image), and each mixture's kinds."""
    cache = workdir / f"sounds_{n}.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return dict(images=z["images"], kinds=[k.split("|") for k in z["kinds"]])
    images, kinds = [], []
    for start in tqdm(range(0, n, 500), desc="rendering the sounds train split", mininterval=5):
        mixes = sounds.mixtures("train", min(500, n - start), start=start)
        spec = audio.log_mel(np.stack([m.waveform for m in mixes]))
        images.append(audio.spectrogram_image(spec, nets.SOUND_FRAMES).half().numpy())
        kinds += [m.kinds for m in mixes]
    out = dict(images=np.concatenate(images), kinds=kinds)
    workdir.mkdir(parents=True, exist_ok=True)
    np.savez(cache, images=out["images"], kinds=np.array(["|".join(k) for k in kinds]))
    return out


def sound_caption(kinds: list[str], rng: np.random.Generator, full: float = 0.6) -> str:
    """A caption for one mixture: empty (10%), every source in a random order (`full`), or a random
    non-empty subset of its sources (the rest), so that one source's phrase alone means "this is in it"
    rather than "only this"."""
    if not 0.0 <= full <= 0.9:
        raise ValueError(f"full (the share of captions naming every source) must be in [0, 0.9], got {full}")
    u = rng.random()
    if u < 0.10:
        return ""
    order = [kinds[int(i)] for i in rng.permutation(len(kinds))]
    if u < 0.10 + full:
        return sounds.caption_for(order)
    return sounds.caption_for(order[:int(rng.integers(1, len(kinds) + 1))])


def objects_of(labels: list[str], radii: list[float] | None = None) -> list[shapes.ShapeObject]:
    """Placeholder objects named by labels ("red circle") with their half-sizes, enough to write captions."""
    radii = radii or [5.0] * len(labels)
    return [shapes.ShapeObject(l.split()[1], l.split()[0], 0, 0, r) for l, r in zip(labels, radii)]


def alt_text_caption(labels: list[str], radii: list[float] | None, background: str, rng: np.random.Generator,
                     background_only: float = 0.05, every: float = 0.25,
                     size_words: bool = True, empty: float = 0.10) -> tuple[str, list[int]]:
    """World v2's captions, like alt text: what is there is rarely all named. For a scene with objects: empty
    `empty` (10%), the background alone `background_only` (5%), every object `every` (25%, in a random order), otherwise
    a random proper subset (a lone object is named alone); the background said half the time; with size_words,
    each named object's size word (when it has one, shapes.size_word) said half the time. An empty scene: ""
    40%, else its background's name. (The v2 pilot's arms used 10%, 20% and no size words.)
    Returns the caption and the indices of the objects it names, in caption order."""
    if not (0 <= empty and 0 <= background_only and 0 <= every and empty + background_only + every <= 1):
        raise ValueError(f"alt_text_caption's shares empty={empty}, background_only={background_only}, "
                         f"every={every} must each be >= 0 and add up to at most 1")
    objs = objects_of(labels, radii)
    u = rng.random()
    if not objs:
        return ("" if u < 0.4 else background), []
    if u < empty:
        return "", []
    if u < empty + background_only:
        return background, []
    order = [int(i) for i in rng.permutation(len(objs))]
    k = len(objs) if u < empty + background_only + every or len(objs) == 1 else int(rng.integers(1, len(objs)))
    sizes = [bool(rng.random() < 0.5) for _ in range(k)] if size_words else None
    bg = background if rng.random() < 0.5 else None
    return shapes.caption_for([objs[i] for i in order[:k]], bg, sizes), order[:k]


def training_caption(labels: list[str], background: str, rng: np.random.Generator) -> tuple[str, list[int]]:
    """A caption for one scene, varied like real captions are: full (55%), objects only in a random
    order (15%), a random subset of the objects (12%), the background alone (8%), empty (10%).
    Returns the caption and the indices of the objects it names, in caption order."""
    u = rng.random()
    objs = objects_of(labels)
    if u < 0.10:
        return "", []
    if u < 0.65:
        return shapes.caption_for(objs, background), list(range(len(objs)))
    order = [int(i) for i in rng.permutation(len(objs))]
    if u < 0.80:
        return shapes.caption_for([objs[i] for i in order], None), order
    if u < 0.92:
        k = int(rng.integers(1, len(objs) + 1))
        return shapes.caption_for([objs[i] for i in order[:k]], background if rng.random() < 0.5 else None), order[:k]
    return background, []


def word_positions(tokens: list[str], labels: list[str], named: list[int]) -> list[tuple[int, int, int]]:
    """(object index, colour token position, shape token position) for each named object, found in
    caption order in the tokenized caption (one token per word, "<|startoftext|>" at 0)."""
    words = [t.replace("</w>", "") for t in tokens]
    out, at = [], 0
    for k in named:
        colour, shape = labels[k].split()
        while not (words[at] == colour and words[at + 1] == shape):
            at += 1
        out.append((k, at, at + 1))
        at += 2
    return out


class Tokens:
    """Caches token ids per caption: (B, MAX_LENGTH) long, padded like SD."""
    def __init__(self, tokenizer):
        self.tok, self.cache = tokenizer, {}

    def __call__(self, captions: list[str]) -> torch.Tensor:
        for c in captions:
            if c not in self.cache:
                self.cache[c] = self.tok(c, padding="max_length", max_length=self.tok.model_max_length,
                                         truncation=True, return_tensors="pt").input_ids[0]
        return torch.stack([self.cache[c] for c in captions])

    def words(self, caption: str) -> list[str]:
        return self.tok.convert_ids_to_tokens(self([caption])[0].tolist())


# ---------------------------------------------------------------------------------------- losses
def denoising_loss(pred: torch.Tensor, noise: torch.Tensor, snr: torch.Tensor, objects: torch.Tensor | None = None,
                   object_weight: float = 0.0) -> torch.Tensor:
    """Epsilon prediction's loss, min-SNR-5 weighted (Hang et al. 2023, w = min(SNR, 5) / SNR for epsilon: it
    speeds convergence). pred, noise: (B, C, h, w); snr: (B,). objects (B, H, W) object maps (0: background):
    with object_weight > 0 a latent pixel's squared error counts (1 + object_weight x the share of it an object
    covers) times, the batch's mean weight kept at 1, so the loss's scale does not change."""
    per = F.mse_loss(pred, noise, reduction="none")                                      # (B, C, h, w)
    if objects is not None and object_weight > 0:
        cover = F.adaptive_avg_pool2d((objects > 0).float()[:, None], per.shape[-2:])   # (B, 1, h, w)
        weight = 1 + object_weight * cover
        per = per * (weight / weight.mean())
    return (per.mean((1, 2, 3)) * snr.clamp(max=5.0) / snr).mean()


def shape_swap_loss(pred: torch.Tensor, pred_swapped: torch.Tensor, noise: torch.Tensor, masks: torch.Tensor,
                    sharpness: float = 10.0) -> torch.Tensor:
    """A ranking loss on the denoising error read as a classifier (as Li et al. 2023's Diffusion Classifier reads
    it): on a named object's latent pixels the error with the true caption should be below the error with the
    object's shape word swapped ("a red circle" -> "a red square"). softplus(sharpness x (e_true - e_swapped) /
    (e_true + e_swapped)): the gap relative to the errors, so its scale does not follow the noise level.
    pred, pred_swapped, noise: (n, C, h, w); masks: (n, 1, h, w), the share of each latent pixel the object covers."""
    area = masks.sum((1, 2, 3)).clamp_min(1e-8)
    e_true = ((pred - noise) ** 2 * masks).sum((1, 2, 3)) / area                   # (n,)
    e_swap = ((pred_swapped - noise) ** 2 * masks).sum((1, 2, 3)) / area
    return F.softplus(sharpness * (e_true - e_swap) / (e_true + e_swap).detach().clamp_min(1e-8)).mean()


def null_locality_loss(pred: torch.Tensor, pred_null: torch.Tensor, unnamed: torch.Tensor) -> torch.Tensor:
    """Where a caption names nothing, it should not change the prediction: the mean squared difference between
    the caption's and ""'s predictions over the latent pixels no named object covers (unnamed objects and
    background), per scene, then averaged. What ScalingConcept's context claim needs: w (eps_c - eps_null) scales
    only what c names. pred, pred_null: (n, C, h, w); unnamed: (n, 1, h, w), the share of each pixel no named
    object covers."""
    area = (unnamed.sum((1, 2, 3)) * pred.shape[1]).clamp_min(1e-8)
    return (((pred - pred_null) ** 2 * unnamed).sum((1, 2, 3)) / area).mean()


def swap_shapes(ids: torch.Tensor, pairs: list[tuple[int, int, int]], shape_ids: list[int], rng: np.random.Generator,
                n: int, which: str = "first") -> tuple[list[int], torch.Tensor, list[int]]:
    """For up to n captions that name an object: (their rows in the batch, their token ids (n', L) with one named
    object's shape token replaced by another shape's, that object's number). which: "first", the first named
    object's; "random", a named object drawn at random (so that the second of two named objects is trained to
    matter too). ids: (B, L) the batch's token ids; pairs: shapes_captions' (row, object number, token position);
    shape_ids: the shape words' token ids."""
    if which not in ("first", "random"):
        raise ValueError(f"which must be 'first' or 'random', got {which!r}")
    named: dict[int, list[tuple[int, int]]] = {}
    for j, k, pos in pairs:
        if int(ids[j, pos]) in shape_ids:
            named.setdefault(j, []).append((k, pos))
    rows = sorted(named)[:n]                             # the batch's scenes are drawn at random: any n will do
    chosen = {j: named[j][0 if which == "first" else int(rng.integers(len(named[j])))] for j in rows}
    swapped = ids[rows].clone()
    for r, j in enumerate(rows):
        pos = chosen[j][1]
        others = [s for s in shape_ids if s != int(swapped[r, pos])]
        swapped[r, pos] = others[int(rng.integers(len(others)))]
    return rows, swapped, [chosen[j][0] for j in rows]


# -------------------------------------------------------------------------------------- grounding
GROUNDED = r"^(down_blocks|up_blocks)\..*attn2$"      # cross-attention at 16x16 and 8x8 (not the 4x4 middle)


class CrossAttentionMaps(hooks.LiveAttention):
    """Keeps each grounded layer's head-mean cross-attention (B, Q, K) of one forward, with gradients."""

    def __init__(self, unet):
        super().__init__(unet, layers=GROUNDED, kind="cross")


def attention_inside_loss(maps: dict, masks: torch.Tensor, b: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """(1 - share of token p's cross-attention in scene b that lies inside mask)^2, averaged over the pairs and
    the layers. maps: {layer: (B, Q, K)}; masks: (n, 1, 32, 32) in [0, 1]; b, p: (n,) batch rows, token positions."""
    losses = []
    for a in maps.values():                                                            # (B, Q, K)
        side = int(round(a.shape[1] ** 0.5))
        m = F.interpolate(masks, size=(side, side), mode="area").flatten(1)           # (n, Q)
        col = a[b, :, p]                                                               # (n, Q)
        inside = (col * m).sum(1) / col.sum(1).clamp_min(1e-8)
        losses.append(((1 - inside) ** 2).mean())
    return torch.stack(losses).mean()


def grounding_loss(maps: dict, objects: torch.Tensor, pairs: list[tuple[int, int, int]]) -> torch.Tensor:
    """TokenCompose's token loss (Wang et al. 2024, eq. 3): for each named object's colour and shape token,
    (1 - share of its cross-attention inside the object's mask)^2, averaged over tokens and layers.
    objects: (B, 32, 32) object maps; pairs: (batch index, object number from 1, token position)."""
    if not pairs:
        return torch.zeros(())
    b, k, p = (torch.tensor(x) for x in zip(*pairs))
    return attention_inside_loss(maps, (objects[b] == k.view(-1, 1, 1)).float()[:, None], b, p)


def end_of_text_grounding_loss(maps: dict, objects: torch.Tensor, ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """The same loss for each caption's first end-of-text token against the union of all the scene's objects,
    named or not ("" included), on scenes with an object: what ConceptExpress's filter (eq. 5) reads in SD,
    where the end-of-text token of "" attends to the salient objects. objects: (B, 32, 32); ids: (B, L)."""
    b = torch.nonzero(objects.flatten(1).amax(1) > 0).flatten()
    if len(b) == 0:
        return torch.zeros(())
    p = (ids[b] == eos_id).int().argmax(1)                      # the first end-of-text token of each caption
    return attention_inside_loss(maps, (objects[b] > 0).float()[:, None], b, p)


# ------------------------------------------------------------------------------------ checkpoints
def lr_at(step: int, total: int, peak: float, warmup: int = 200) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))


def save_ckpt(path: Path, **state):
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_ckpt(path: Path):
    return torch.load(path, weights_only=False) if path.exists() else None


@torch.no_grad()
def load_ema_shapes(path: Path):
    """(EMA UNet, EMA text encoder, step) of a toy-shapes training's checkpoint (train_unet's `unet.ckpt`), in
    eval mode; None when there is none yet. What a run's readers (benchmarks/world_v2_*.py) look at mid-run."""
    ck = load_ckpt(path)
    if ck is None:
        return None
    unet, text = nets.unet(), nets.text_encoder(vocab.VOCAB_DIR)
    unet.load_state_dict(ck["ema_unet"]); text.load_state_dict(ck["ema_text"])
    return unet.eval(), text.eval(), ck["step"]


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)


# ----------------------------------------------------------------------------------------- stages
def train_vae(x_all: torch.Tensor, vae, args, workdir: Path, decoder_only: bool = False):
    """AutoencoderKL `vae` on images x_all (N, C, H, W) in [-1, 1]: MSE + L1 reconstruction, a tiny KL (1e-6)
    as in SD's VAE. decoder_only: fine-tune the decoder alone (--decoder-steps at --decoder-lr; encoder,
    quant_conv and scaling factor frozen, so the latent space a UNet learned on stays the same), with the
    squared error weighted by exp(2 x) so that loud pixels, where a spectrogram's energy is, count more, plus
    --band-weight times band_energy_loss (each band's loudness, what the sounds oracle reads)."""
    ck_path = workdir / ("decoder.ckpt" if decoder_only else "vae.ckpt")
    steps, peak, warmup = (args.decoder_steps, args.decoder_lr, 50) if decoder_only else (args.vae_steps, args.vae_lr, 200)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters()) if decoder_only else list(vae.parameters())
    vae.requires_grad_(not decoder_only)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=peak, weight_decay=0.0)
    g = torch.Generator().manual_seed(args.seed + (3 if decoder_only else 0))
    step = 0
    if (ck := load_ckpt(ck_path)) is not None:
        vae.load_state_dict(ck["model"]); opt.load_state_dict(ck["opt"]); g.set_state(ck["rng"]); step = ck["step"]
    bar = tqdm(total=steps, initial=step, desc="VAE decoder" if decoder_only else "VAE", mininterval=2)
    while step < steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, peak, warmup)
        x = x_all[torch.randint(len(x_all), (args.vae_batch,), generator=g)].float()
        with torch.set_grad_enabled(not decoder_only):
            post = vae.encode(x).latent_dist
            z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        if decoder_only:        # loud pixels weigh more (up to e^2 / e^-2 = 55x): energy lives in them
            w = (2 * x).exp()
            loss = ((rec - x) ** 2 * w).sum() / w.sum() + 0.1 * F.l1_loss(rec, x)
            loss = loss + args.band_weight * band_energy_loss(rec, x) if args.band_weight else loss
        else:
            loss = F.mse_loss(rec, x) + 0.1 * F.l1_loss(rec, x) + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        step += 1
        bar.update(1); bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % 250 == 0 or step == steps:
            save_ckpt(ck_path, model=vae.state_dict(), opt=opt.state_dict(), rng=g.get_state(), step=step)
    bar.close()
    vae.requires_grad_(False)
    if not decoder_only:        # SD's convention: latents are multiplied by 1 / std so that they have unit variance.
        with torch.no_grad():
            z = torch.cat([vae.encode(x_all[i:i + 512].float()).latent_dist.mean for i in range(0, min(len(x_all), 4096), 512)])
        vae.register_to_config(scaling_factor=float(1 / z.std()))
    return vae.eval()


def band_energy_loss(rec: torch.Tensor, x: torch.Tensor, chunk: int = 16, mels: int = 4) -> torch.Tensor:
    """How far the decoded spectrograms' loudness is from the truth, cell by cell. rec, x: (B, 1, frames, 64)
    toy-sounds images (log-mel / LOG_MEL_SCALE). A cell is `chunk` frames x `mels` mel bands; its log energy
    is the logsumexp of its log-mel pixels (the log of its summed mel power), and the loss is the mean absolute
    difference of those, in image units, weighted toward the loud cells (linearly from 40 dB below the
    clip's loudest cell). The pixel losses let a decoder trade a loud cell's level for its texture; this
    does not, and band energy over time is what sounds.presence measures."""
    def cells(img):
        y = img[:, 0] * audio.LOG_MEL_SCALE                          # log-mel, (B, frames, 64)
        b, t, m = y.shape
        y = y[:, : t - t % chunk].reshape(b, t // chunk, chunk, m // mels, mels)
        return torch.logsumexp(y.permute(0, 1, 3, 2, 4).flatten(3), dim=3)   # (B, t/chunk, 64/mels)
    e_rec, e_x = cells(rec), cells(x)
    floor = math.log(1e4)                                                  # 40 dB
    top = e_x.flatten(1).max(1).values[:, None, None]
    w = ((e_x - (top - floor)) / floor).clamp(0, 1)
    return ((e_rec - e_x).abs() * w).sum() / w.sum().clamp_min(1e-6) / audio.LOG_MEL_SCALE


def shapes_captions(data, every: float = 0.25, empty: float = 0.10):
    """toy-shapes' caption sampler for train_unet: (scene indices, rng, Tokens) -> (captions, grounding pairs).
    every, empty: world v2's shares of the captions of scenes with objects that name every object, and that are
    "" (alt_text_caption)."""
    def caption(i: int, rng: np.random.Generator):
        if data.get("radii") is None:           # world v1 (no sizes kept): its caption mix
            return training_caption(data["labels"][i], data["backgrounds"][i], rng)
        return alt_text_caption(data["labels"][i], data["radii"][i], data["backgrounds"][i], rng, every=every,
                                empty=empty)

    def captions(idx: list[int], rng: np.random.Generator, tokens: Tokens):
        caps, named = zip(*[caption(i, rng) for i in idx])
        pairs = [(j, k + 1, pos) for j, (c, ks, i) in enumerate(zip(caps, named, idx))
                 for k, pc, ps in word_positions(tokens.words(c), data["labels"][i], ks) for pos in (pc, ps)]
        return list(caps), pairs
    return captions


def sounds_captions(data, full: float = 0.6):
    """toy-sounds' caption sampler for train_unet (no grounding pairs); full: see sound_caption."""
    def captions(idx: list[int], rng: np.random.Generator, tokens: Tokens):
        return [sound_caption(data["kinds"][i], rng, full) for i in idx], []
    return captions


def train_unet(x_all: torch.Tensor, captions, vae, unet, text, tok, args, workdir: Path, objects=None,
               shape_words=()):
    """UNet + CLIP text encoder on epsilon prediction over images x_all (N, C, H, W) in [-1, 1], with
    captions from `captions(indices, rng, tokens)` (see shapes_captions); EMA weights are exported.
    objects (N, H, W): object maps for the grounding loss (toy-shapes only). shape_words: the world's shapes,
    which args.shape_swap swaps for one another (toy-shapes only)."""
    swap_n = args.shape_swap if objects is not None else 0
    null_side = {k: getattr(args, k) for k in ("null_twin", "null_locality") if getattr(args, k)}
    if null_side and not swap_n:
        raise ValueError(f"{', '.join(f'args.{k}={v}' for k, v in null_side.items())} denoises --shape-swap's "
                         f"scenes with \"\" too, but shape_swap is {args.shape_swap}"
                         + (" (and toy-sounds has no objects)" if objects is None else "") + ": set shape_swap, say 16")
    if swap_n and len(shape_words) < 2:
        raise ValueError(f"args.shape_swap={swap_n} swaps a caption's shape word for another of the world's, but "
                         f"shape_words={tuple(shape_words)!r} names fewer than two: pass the world's `shapes`")
    ck_path = workdir / "unet.ckpt"
    tokens = Tokens(tok)
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=args.unet_lr, weight_decay=1e-2)
    ema_unet, ema_text = copy.deepcopy(unet).requires_grad_(False), copy.deepcopy(text).requires_grad_(False)
    sched = nets.scheduler("ddpm")
    g = torch.Generator().manual_seed(args.seed + 1)
    rng = np.random.default_rng(args.seed + 1)
    step, history = 0, []
    if (ck := load_ckpt(ck_path)) is not None:
        unet.load_state_dict(ck["unet"]); text.load_state_dict(ck["text"]); opt.load_state_dict(ck["opt"])
        ema_unet.load_state_dict(ck["ema_unet"]); ema_text.load_state_dict(ck["ema_text"])
        g.set_state(ck["rng"]); rng.bit_generator.state = ck["np_rng"]; step = ck["step"]
        history = ck.get("history", [])
    # Continuing a finished run to more steps restarts the cosine schedule part-way (a warm restart), so
    # every (command, from step, to step) is kept and exported: the weights' exact recipe.
    if step < args.unet_steps:
        history = history + [dict(command=args.command, from_step=step, to_step=args.unet_steps, seconds=None)]
    t_start = time.time()
    # Encode the whole train split once: the posterior's mean and std per image.
    with torch.no_grad():
        posts = [vae.encode(x_all[i:i + 512].float()).latent_dist for i in range(0, len(x_all), 512)]
        mu, sd = torch.cat([p.mean for p in posts]), torch.cat([p.std for p in posts])
    sf = vae.config.scaling_factor
    alphas = sched.alphas_cumprod
    eot_weight = args.eot_grounding if objects is not None else 0.0
    ground = args.grounding > 0 and objects is not None
    object_weight = args.object_weight if objects is not None else 0.0
    shape_ids = tok.convert_tokens_to_ids([f"{s}</w>" for s in shape_words])
    objects = None if objects is None else torch.as_tensor(objects).long()
    grab = CrossAttentionMaps(unet) if ground or eot_weight else contextlib.nullcontext()
    bar = tqdm(total=args.unet_steps, initial=step, desc="UNet + text encoder", mininterval=2)
    while step < args.unet_steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.unet_steps, args.unet_lr)
        idx = torch.randint(len(mu), (args.batch,), generator=g)
        z0 = (mu[idx] + sd[idx] * torch.randn(mu[idx].shape, generator=g)) * sf
        caps, pairs = captions(idx.tolist(), rng, tokens)
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, sched.config.num_train_timesteps, (args.batch,), generator=g)
        a = alphas[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise                  # DDPM forward process (Ho et al. eq. 4)
        ids = tokens(caps)
        cond = text(ids).last_hidden_state
        snr = a.flatten() / (1 - a.flatten())
        with grab:
            pred = unet(zt, t, cond).sample
        loss = denoising_loss(pred, noise, snr, objects[idx] if object_weight else None, object_weight)
        g_loss = grounding_loss(grab.maps, objects[idx], pairs) if ground else torch.zeros(())
        loss = loss + args.grounding * g_loss
        if eot_weight:
            loss = loss + eot_weight * end_of_text_grounding_loss(grab.maps, objects[idx], ids, tok.eos_token_id)
        if swap_n and pairs:                  # the same noisy latents, denoised again with a shape word swapped
            rows, swapped, ks = swap_shapes(ids, pairs, shape_ids, rng, swap_n, args.swap_object)
            masks = F.adaptive_avg_pool2d((objects[idx[rows]] == torch.tensor(ks).view(-1, 1, 1)).float()[:, None],
                                          pred.shape[-2:])                                 # (n, 1, h, w)
            n, copies = len(rows), 1 + bool(null_side)
            if null_side:                     # and with "": one forward of 2n rows (the swapped, then the null)
                swapped = torch.cat([swapped, tokens([""] * n)])
            preds = unet(zt[rows].repeat(copies, 1, 1, 1), t[rows].repeat(copies),
                         text(swapped).last_hidden_state).sample                         # (copies x n, C, h, w)
            loss = loss + args.shape_swap_weight * shape_swap_loss(pred[rows], preds[:n], noise[rows], masks)
            if args.null_twin:
                loss = loss + args.null_twin * shape_swap_loss(pred[rows], preds[n:], noise[rows], masks)
            if args.null_locality:
                named = torch.zeros(n, *objects.shape[1:])                                 # (n, 32, 32)
                for j, k, _ in pairs:
                    if j in rows:
                        named[rows.index(j)] += (objects[idx[j]] == k).float()
                unnamed = 1 - F.adaptive_avg_pool2d(named.clamp(max=1)[:, None], pred.shape[-2:])
                loss = loss + args.null_locality * null_locality_loss(pred[rows], preds[n:], unnamed)
        opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        ema_update(ema_unet, unet, decay); ema_update(ema_text, text, decay)
        bar.update(1); bar.set_postfix(loss=f"{loss.item():.4f}", ground=f"{g_loss.item():.3f}")
        if step == args.unet_steps:                  # wall time of this run's steps (a resumed run: since resuming)
            history[-1]["seconds"] = round(time.time() - t_start)
        if step % 250 == 0 or step == args.unet_steps:
            save_ckpt(ck_path, unet=unet.state_dict(), text=text.state_dict(), opt=opt.state_dict(),
                      ema_unet=ema_unet.state_dict(), ema_text=ema_text.state_dict(),
                      rng=g.get_state(), np_rng=rng.bit_generator.state, step=step, history=history)
    bar.close()
    return ema_unet.eval(), ema_text.eval(), tok, history


def describes(text_labels: list[str], text_bg: str | None, labels: list[str], bg: str) -> bool:
    """Ground truth for CLIP's targets: does a text naming these objects (and background) fit the scene?"""
    return set(text_labels) <= set(labels) and (text_bg is None or text_bg == bg)


def contrastive_loss(logits_per_image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric contrastive loss (Radford et al. 2021) with many positives: logits_per_image (images, texts);
    target (images, texts) 1 where the text truly describes the image. Each side's cross-entropy is against its
    positives spread evenly; a text that describes no image in the batch (a hard negative) is a negative for every
    image and has no text-to-image term of its own."""
    to_texts = F.cross_entropy(logits_per_image, target / target.sum(1, keepdim=True))
    has = target.sum(0) > 0                                                   # texts with a positive image
    to_images = F.cross_entropy(logits_per_image.T[has], target.T[has] / target.T[has].sum(1, keepdim=True))
    return 0.5 * (to_texts + to_images)


def train_clip(data, args, workdir: Path):
    """toy-clip: CLIP's symmetric contrastive loss, with targets from the world's ground truth
    (a text is a positive for every image it truly describes, not only its own). With args.clip_hard_negatives
    = p, a one-object phrase ("a red circle") brings, with chance p, the same colour with another shape ("a red
    square") into the batch's texts: a negative for its image, unless that image holds one too."""
    hard = args.clip_hard_negatives
    kinds = sorted({lab.split()[1] for labels in data["labels"] for lab in labels})     # the world's shapes
    ck_path = workdir / "clip.ckpt"
    tok = vocab.tokenizer()
    tokens = Tokens(tok)
    model = nets.clip()
    opt = torch.optim.AdamW(model.parameters(), lr=args.clip_lr, weight_decay=1e-2)
    g = torch.Generator().manual_seed(args.seed + 2)
    rng = np.random.default_rng(args.seed + 2)
    step = 0
    if (ck := load_ckpt(ck_path)) is not None:
        model.load_state_dict(ck["model"]); opt.load_state_dict(ck["opt"])
        g.set_state(ck["rng"]); rng.bit_generator.state = ck["np_rng"]; step = ck["step"]
    x_all = to_float(data["images"])
    bar = tqdm(total=args.clip_steps, initial=step, desc="toy-clip", mininterval=2)
    while step < args.clip_steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.clip_steps, args.clip_lr)
        idx = torch.randint(len(x_all), (args.clip_batch,), generator=g).tolist()
        texts, named = [], []
        for i in idx:
            labels, bg = data["labels"][i], data["backgrounds"][i]
            u = rng.random()
            if not labels:                                         # an empty scene (world v2): its background
                texts.append(bg); named.append(([], bg))
            elif u < 0.6:                                          # one object's phrase
                lab = [labels[int(rng.integers(len(labels)))]]
                texts.append(f"a {lab[0]}"); named.append((lab, None))
                if hard and rng.random() < hard:                   # its shape swapped: a hard negative
                    colour, shape = lab[0].split()
                    other = f"{colour} {rng.choice([k for k in kinds if k != shape])}"
                    texts.append(f"a {other}"); named.append(([other], None))
            else:                                                  # the caption, with or without background
                use_bg = bg if u < 0.85 else None
                objs = objects_of(labels)
                texts.append(shapes.caption_for(objs, use_bg)); named.append((labels, use_bg))
        x = x_all[idx] + 0.03 * torch.randn((len(idx), 3, shapes.SIZE, shapes.SIZE), generator=g)
        target = torch.tensor([[describes(tl, tb, data["labels"][i], data["backgrounds"][i]) for tl, tb in named]
                               for i in idx], dtype=torch.float32)                  # (images, texts)
        out = model(input_ids=tokens(texts), pixel_values=x)
        loss = contrastive_loss(out.logits_per_image, target)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        step += 1
        bar.update(1); bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % 250 == 0 or step == args.clip_steps:
            save_ckpt(ck_path, model=model.state_dict(), opt=opt.state_dict(), rng=g.get_state(),
                      np_rng=rng.bit_generator.state, step=step)
    bar.close()
    return model.eval(), tok


# ------------------------------------------------------------------------------------------ export
def export_pipeline(name: str, vae, unet, text, tok, out: Path, meta: dict):
    """Save a StableDiffusionPipeline to out/name with its recipe in TRAINING.json."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                   scheduler=nets.scheduler("ddim"), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out / name, safe_serialization=True)
    (out / name / "TRAINING.json").write_text(json.dumps(meta, indent=2))


def export_clip(model, tok, out: Path, meta: dict):
    from transformers import CLIPImageProcessor

    proc = CLIPImageProcessor(size={"shortest_edge": shapes.SIZE}, crop_size={"height": shapes.SIZE, "width": shapes.SIZE},
                              image_mean=[0.5] * 3, image_std=[0.5] * 3, resample=3)
    model.save_pretrained(out / "toy-clip", safe_serialization=True)
    tok.save_pretrained(out / "toy-clip")
    proc.save_pretrained(out / "toy-clip")
    (out / "toy-clip" / "TRAINING.json").write_text(json.dumps(meta, indent=2))


def parser() -> argparse.ArgumentParser:
    """The training command's options, with their defaults (the recipe the embedded weights were trained by)."""
    p = argparse.ArgumentParser(prog="python -m conceptlab.toy.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("world", choices=["shapes", "sounds"], help="which embedded world to train")
    p.add_argument("--stage", choices=["all", "vae", "unet", "clip", "decoder"], default="all",
                   help="decoder: fine-tune the exported pipeline's VAE decoder alone, and export it again")
    p.add_argument("--scenes", type=int, default=None,
                   help="train scenes (mixtures) rendered once and reused (default: 20000 shapes, 12000 sounds)")
    p.add_argument("--vae-steps", type=int, default=1000)
    p.add_argument("--unet-steps", type=int, default=4500)
    p.add_argument("--clip-steps", type=int, default=1500)
    p.add_argument("--decoder-steps", type=int, default=800)
    p.add_argument("--decoder-lr", type=float, default=5e-4)
    p.add_argument("--band-weight", type=float, default=0.0,
                   help="decoder stage: weight of band_energy_loss (each cell's loudness) beside the pixel loss")
    p.add_argument("--vae-batch", type=int, default=16)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--clip-batch", type=int, default=128)
    p.add_argument("--vae-lr", type=float, default=2e-3)
    p.add_argument("--unet-lr", type=float, default=1e-3)
    p.add_argument("--clip-lr", type=float, default=1e-3)
    p.add_argument("--clip-hard-negatives", type=float, default=0.0,
                   help="toy-clip: chance that a one-object phrase brings the same colour with another shape into "
                        "the batch's texts, as a negative (0: none)")
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--grounding", type=float, default=0.1,
                   help="weight of the TokenCompose token loss that ties each object word's cross-attention to "
                        "its mask (0: plain denoising)")
    p.add_argument("--eot-grounding", type=float, default=0.0,
                   help="toy-shapes: weight of end_of_text_grounding_loss, which ties each caption's end-of-text "
                        "token's cross-attention to the scene's objects, as SD's is (0: none)")
    p.add_argument("--object-weight", type=float, default=0.0,
                   help="toy-shapes: the denoising loss counts a latent pixel on an object (1 + this) times a "
                        "background one's (0: every pixel alike)")
    p.add_argument("--shape-swap", type=int, default=0,
                   help="toy-shapes: scenes per batch denoised again with a named object's shape word swapped, "
                        "for shape_swap_loss (0: none; each costs a UNet forward and backward)")
    p.add_argument("--swap-object", choices=["first", "random"], default="first",
                   help="toy-shapes: whose shape word --shape-swap swaps, the caption's first named object's or one "
                        "drawn at random")
    p.add_argument("--shape-swap-weight", type=float, default=0.1, help="shape_swap_loss's weight")
    p.add_argument("--null-twin", type=float, default=0.0,
                   help="toy-shapes: with --shape-swap, the swapped scenes are also denoised with \"\", and "
                        "shape_swap_loss with this weight asks the caption to beat \"\" on the named object's "
                        "pixels (0: none)")
    p.add_argument("--null-locality", type=float, default=0.0,
                   help="toy-shapes: with --shape-swap, the swapped scenes are also denoised with \"\", and "
                        "null_locality_loss with this weight asks the caption's and \"\"'s predictions to agree "
                        "where no named object is (0: none)")
    p.add_argument("--empty-captions", type=float, default=0.10,
                   help="toy-shapes v2: share of the captions of scenes with objects that are empty (\"\"); an "
                        "empty scene's caption is \"\" 40%% of the time whatever this is")
    p.add_argument("--full-captions", type=float, default=0.6,
                   help="toy-sounds: share of captions naming every source (10%% are empty, the rest name a "
                        "random subset)")
    p.add_argument("--world-version", type=int, choices=[1, 2], default=1,
                   help="shapes world version (2: issue 28's world, with alt-text captions; see shapes.World)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None, help="checkpoints (default: .toy_runs/<world>)")
    p.add_argument("--out", type=Path, default=WEIGHTS)
    p.add_argument("--smoke", action="store_true", help="3 steps per stage on 64 scenes, into --workdir (for tests)")
    return p


def options(world: str = "shapes", command: str | None = None, **overrides) -> argparse.Namespace:
    """The command's options for `world` with its defaults, some replaced by keyword (dashes as underscores):
    what a script that calls train_unet or train_clip itself passes as `args`, so it trains by the same recipe.
    options(unet_steps=1500, shape_swap=16); an unknown name is refused, so a renamed option cannot go stale.
    command: what the run's history records as its command (default: this call)."""
    args = parser().parse_args([world])
    unknown = sorted(set(overrides) - set(vars(args)))
    if unknown:
        raise TypeError(f"train.options: no option {', '.join(unknown)}; the options are "
                        f"{', '.join(sorted(vars(args)))}")
    vars(args).update(overrides)
    args.command = command or "train.options(" + ", ".join(f"{k}={v!r}" for k, v in overrides.items()) + ")"
    return args


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)
    if args.world == "sounds" and args.stage == "clip":
        p.error("toy-sounds has no clip stage: its oracle is the sounds world's band energy")
    # Options a world does not read are refused, not silently ignored (a run would train without them).
    unread = ["object_weight", "eot_grounding", "shape_swap", "swap_object", "null_twin", "null_locality",
              "clip_hard_negatives", "empty_captions"] if args.world == "sounds" else \
        ["empty_captions"] if args.world_version == 1 else []
    if changed := [f"--{k.replace('_', '-')}" for k in unread if getattr(args, k) != p.get_default(k)]:
        p.error(f"{', '.join(changed)} changes nothing for {args.world}"
                + (" (world v1's captions are its own mix): add --world-version 2" if args.world == "shapes" else
                   ": those options are toy-shapes' only"))
    args.scenes = args.scenes or (20000 if args.world == "shapes" else 12000)
    args.workdir = args.workdir or Path(".toy_runs") / args.world
    if args.smoke:
        args.scenes, args.vae_steps, args.unet_steps, args.clip_steps, args.decoder_steps = 64, 3, 3, 3, 3
        args.batch, args.clip_batch, args.vae_batch = 8, 8, 8
    torch.manual_seed(args.seed)
    args.workdir.mkdir(parents=True, exist_ok=True)
    command = "python -m conceptlab.toy.train " + " ".join(argv if argv is not None else sys.argv[1:])
    args.command = command
    t0 = time.time()
    if args.world == "shapes":
        data = world_data(args.scenes, args.workdir, shapes.WORLDS[args.world_version])
        x_all, captions, new_vae, vocab_dir, name = (to_float(data["images"]),
                                                     shapes_captions(data, empty=args.empty_captions), nets.vae,
                                                     vocab.VOCAB_DIR, "toy-shapes")
    else:
        data = sound_data(args.scenes, args.workdir)
        x_all, captions, new_vae, vocab_dir, name = (torch.from_numpy(data["images"]), sounds_captions(data, args.full_captions),
                                                     nets.sound_vae, vocab.SOUNDS_DIR, "toy-sounds")
    meta = dict(command=command, seed=args.seed, world_version=args.world_version, scenes=args.scenes, batch=args.batch, vae_batch=args.vae_batch,
                clip_batch=args.clip_batch, torch=torch.__version__)
    if args.world == "sounds":              # how conceptlab.load turns waveforms into this model's images and back
        meta = dict(meta, world="sounds", audio=dict(sample_rate=audio.SAMPLE_RATE, frames=nets.SOUND_FRAMES,
                                                     log_mel_scale=audio.LOG_MEL_SCALE, length=sounds.LENGTH))
    if args.stage in ("all", "vae", "unet"):
        vae_path = args.workdir / "vae"
        if args.stage == "unet" and vae_path.exists():
            from diffusers import AutoencoderKL
            vae = AutoencoderKL.from_pretrained(vae_path)
            earlier = args.out / name / "TRAINING.json"
            earlier = json.loads(earlier.read_text()) if earlier.exists() else {}
            meta.update({k: earlier[k] for k in ("vae_steps", "vae_seconds") if k in earlier})   # the VAE's own run
        else:
            vae = train_vae(x_all, new_vae(), args, args.workdir)
            vae.save_pretrained(vae_path)
            meta["vae_seconds"] = round(time.time() - t0)
            print(f"VAE done at {time.time() - t0:.0f} s")
        if args.stage in ("all", "unet"):
            unet_net = nets.unet() if args.world == "shapes" else nets.sound_unet()
            unet, text, tok, history = train_unet(x_all, captions, vae, unet_net, nets.text_encoder(vocab_dir),
                                                  vocab.tokenizer(vocab_dir), args, args.workdir,
                                                  objects=data.get("objects"),
                                                  shape_words=shapes.WORLDS[args.world_version].shapes)
            export_pipeline(name, vae, unet, text, tok, args.out,
                            dict(dict(vae_steps=args.vae_steps) | meta, unet_steps=args.unet_steps,
                                 unet_history=history, seconds=round(time.time() - t0)))
            print(f"{name} written to {args.out / name} at {time.time() - t0:.0f} s")
    if args.stage == "decoder":
        from diffusers import StableDiffusionPipeline
        pipe = StableDiffusionPipeline.from_pretrained(args.out / name)
        vae = train_vae(x_all, pipe.vae, args, args.workdir, decoder_only=True)
        old = json.loads((args.out / name / "TRAINING.json").read_text())
        export_pipeline(name, vae, pipe.unet, pipe.text_encoder, pipe.tokenizer, args.out,
                        dict(old, decoder=dict(command=command, steps=args.decoder_steps, lr=args.decoder_lr,
                                               band_weight=args.band_weight, seconds=round(time.time() - t0))))
        print(f"{name}'s decoder fine-tuned and written to {args.out / name}")
    if args.stage in ("all", "clip") and args.world == "shapes":
        t1 = time.time()
        model, tok = train_clip(data, args, args.workdir)
        export_clip(model, tok, args.out, dict(meta, clip_steps=args.clip_steps, seconds=round(time.time() - t1)))
        print(f"toy-clip written to {args.out / 'toy-clip'}")
    print(f"wall time: {time.time() - t0:.0f} s ({(time.time() - t0) / 60:.1f} min)")


if __name__ == "__main__":
    main()
