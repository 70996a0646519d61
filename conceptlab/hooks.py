"""See inside any diffusers UNet: record (or edit) attention per layer and step, and denoising trajectories.

    with AttentionRecorder(model, prompt="a red circle on grass") as rec:   # every layer, head mean
        image = model.generate("a red circle on grass")
    rec.cache.token_map("circle")                        # (16, 16): where the word "circle" looked

Mechanism: diffusers' attention processors are the extension point. On enter, the recorder swaps a
recording processor into each selected layer (a fresh dict to `set_attn_processor`, which consumes it);
on exit, even after an exception, it puts back the very objects that were there. Forward methods are
never patched. Default SDPA processors never form the attention probabilities, so a recording
processor computes softmax(QK^T / sqrt(d)) explicitly, for the recorded layers only.

Layer names are diffusers module paths, e.g. `up_blocks.1.attentions.0.transformer_blocks.0.attn2`
(attn1: self-attention, attn2: cross-attention). Filters take a regex, a list of names/regexes, or a callable.
Steps are counted as UNet calls inside the context (one call per sampling step, both guidance branches
batched), so `step` 0 is the first call; `rec.timesteps[step]` gives its timestep.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from .checks import as_dtype, as_int, as_number
from .ddim import as_eps, predict_x0

LayerFilter = str | list[str] | tuple[str, ...] | Callable[[str], bool] | None
StepFilter = range | list[int] | tuple[int, ...] | Callable[[int], bool] | None


# ------------------------------------------------------------------------------------------ naming
def unet_of(obj) -> torch.nn.Module:
    """The UNet of a conceptlab Model, a diffusers pipeline, or a UNet itself."""
    if hasattr(obj, "unet"):
        return obj.unet
    if hasattr(obj, "attn_processors") and hasattr(obj, "set_attn_processor"):
        return obj
    raise TypeError(f"expected a conceptlab Model, a diffusers pipeline or a UNet, got {type(obj).__name__}")


def attention_layers(unet) -> dict[str, str]:
    """{layer name: "self" | "cross"} for every attention layer, in forward order. In SD's transformer
    blocks attn1 attends to the image itself and attn2 to the text; the kind is read from the module
    (AudioLDM 2 has blocks whose attn2 is a second self-attention)."""
    names = [k[: -len(".processor")] for k in unet.attn_processors]
    return {n: ("cross" if getattr(unet.get_submodule(n), "is_cross_attention", False) else "self") for n in names}


def tokens_of(model, prompt: str) -> list[str]:
    """The prompt as the (first) tokenizer splits it, start and end tokens included: the positions that
    cross-attention keys are. "a red circle" -> ["<|startoftext|>", "a", "red", "circle", "<|endoftext|>"]."""
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise TypeError("naming tokens by word needs a conceptlab Model or a pipeline with a tokenizer")
    return [t.replace("</w>", "") for t in tok.convert_ids_to_tokens(tok(prompt).input_ids)]


def selects(filt: LayerFilter | StepFilter, item) -> bool:
    """Whether a filter (None = all; a regex; a list of names or regexes; a range/list of steps; a callable) takes item."""
    if filt is None:
        return True
    if callable(filt):
        return bool(filt(item))
    if isinstance(filt, str):
        return re.search(filt, item) is not None
    if isinstance(filt, range):
        return item in filt
    return any(item == f or (isinstance(f, str) and isinstance(item, str) and re.fullmatch(f, item)) for f in filt)


# ------------------------------------------------------------------------------------------- cache
Size = int | tuple[int, int]


def _hw(size: Size) -> tuple[int, int]:
    """A grid size: a side or (h, w), each a positive integer."""
    hw = (size, size) if not isinstance(size, (tuple, list)) else tuple(size)
    if len(hw) != 2:
        raise ValueError(f"a grid size is a side or (h, w), got {size!r}")
    return tuple(as_int(v, "a grid side", "a positive number of cells, e.g. 16", 1) for v in hw)


@dataclass
class AttentionCache:
    """Recorded attention keyed by (step, layer, kind); kind is "self" or "cross".

    Each entry is (B, Q, K) with heads averaged, or (B, H, Q, K) with heads="all": Q = h*w query
    positions on the layer's latent grid `grids[layer]` = (h, w) (after any `resolution` resizing), K = key
    positions (text tokens for cross-attention, the h*w grid again for self-attention). B is the batch
    the UNet saw ([uncond, cond] under guidance) or its conditional half. With `running_mean=True` there
    is one entry per (layer, kind) under step "mean", the average over the recorded steps.
    """
    entries: dict = field(default_factory=dict)
    grids: dict = field(default_factory=dict)
    timesteps: dict = field(default_factory=dict)
    counts: dict = field(default_factory=lambda: defaultdict(int))
    tokens: list[str] | None = None

    def keys(self):
        return list(self.entries)

    @property
    def steps(self) -> list:
        return sorted({k[0] for k in self.entries}, key=lambda s: (isinstance(s, str), s))

    def layers(self, kind: str | None = None) -> list[str]:
        """Recorded layer names (of one kind), in forward order."""
        return list(dict.fromkeys(layer for _, layer, k in self.entries if kind is None or k == kind))

    def __getitem__(self, key) -> torch.Tensor:
        return self.entries[key]

    def __len__(self):
        return len(self.entries)

    def nbytes(self) -> int:
        """Memory the recorded tensors hold."""
        return sum(t.numel() * t.element_size() for t in self.entries.values())

    def maps(self, kind: str, steps: StepFilter = None, layers: LayerFilter = None, size: Size | None = None,
             batch: int | None = -1) -> torch.Tensor:
        """Stack the selected entries as (n, Q', K), heads averaged, queries resized to `size` (a side or
        (h, w)); n runs over the selected (step, layer) pairs in recording order. batch: which image of
        the recorded batch (-1, the default, is the last: the conditional branch under guidance); None
        averages the batch."""
        out = []
        for (step, layer, k), a in self.entries.items():
            if k != kind or not selects(layers, layer) or not (step == "mean" or selects(steps, step)):
                continue
            a = a.float()
            a = a.mean(1) if a.ndim == 4 else a                                  # heads
            a = a.mean(0) if batch is None else a[batch]
            out.append(resize_queries(a, self.grids[layer], _hw(size)) if size else a)
        if not out:
            raise KeyError(f"nothing recorded for kind={kind!r}, steps={steps}, layers={layers}; recorded: "
                           f"steps {self.steps}, layers {self.layers(kind)}")
        if len({m.shape for m in out}) > 1:
            raise ValueError("the selected layers have different resolutions: pass size=... to bring them to one")
        return torch.stack(out)

    def mean(self, kind: str, **kw) -> torch.Tensor:
        """Average over the selected steps and layers: (Q', K)."""
        return self.maps(kind, **kw).mean(0)

    def finest(self, kind: str, layers: LayerFilter = None) -> tuple[int, int]:
        """The largest (h, w) grid among the recorded layers of a kind."""
        grids = [self.grids[n] for n in self.layers(kind) if selects(layers, n)]
        if not grids:
            raise KeyError(f"no {kind}-attention recorded for layers={layers}: the recorder's layer and step filters "
                           f"matched nothing (recorded steps {self.steps}, layers {self.layers(kind)})")
        return max(grids, key=lambda g: g[0] * g[1])

    def token_index(self, token: int | str) -> int:
        if isinstance(token, str):
            if self.tokens is None or token not in self.tokens:
                raise KeyError(f"word {token!r} is not among the recorded prompt's tokens {self.tokens}; "
                               "pass prompt=... to the recorder, or a token position")
            return self.tokens.index(token)
        return token

    def token_map(self, token: int | str, size: Size | None = None, **kw) -> torch.Tensor:
        """Where one text token looked: its cross-attention over the image grid, averaged over the selected
        steps and layers: (h, w) of `size` (default: the finest recorded grid). `token` is a position in
        the tokenized prompt (0 is the start token) or a word of the recorded prompt."""
        h, w = _hw(size) if size else self.finest("cross", kw.get("layers"))
        return self.mean("cross", size=(h, w), **kw)[:, self.token_index(token)].view(h, w)

    def pixel_map(self, y: int, x: int, size: Size | None = None, **kw) -> torch.Tensor:
        """Self-attention of the query pixel (y, x) of the `size` grid over the whole image: (h, w)."""
        h, w = _hw(size) if size else self.finest("self", kw.get("layers"))
        if not (0 <= y < h and 0 <= x < w):
            raise ValueError(f"pixel ({y}, {x}) is outside the {h}x{w} grid")
        sel = [n for n in self.layers("self") if selects(kw.get("layers"), n)]
        rows = []
        for n in sel:                                # each layer's keys live on its own grid: resize both
            m = resize_queries(self.mean("self", **{**kw, "layers": [n]}), self.grids[n], (h, w))
            gh, gw = self.grids[n]
            rows.append(resize_grid(m[y * w + x].view(gh, gw), (h, w)))
        out = torch.stack(rows).mean(0)
        return out / out.sum()


def resize_grid(a: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(..., h, w) -> (..., H, W): area averaging when shrinking, bilinear when growing."""
    if tuple(a.shape[-2:]) == tuple(size):
        return a
    lead = a.shape[:-2]
    x = a.reshape(-1, 1, *a.shape[-2:])
    shrink = size[0] <= a.shape[-2] and size[1] <= a.shape[-1]
    x = F.interpolate(x, size=size, mode="area") if shrink else F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x.reshape(*lead, *size)


def resize_queries(a: torch.Tensor, grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """(..., Q, K) with Q = h*w query positions on `grid` -> (..., H*W, K) on `size`."""
    (h, w), (H, W) = grid, size
    if (h, w) == (H, W):
        return a
    k = a.shape[-1]
    x = a.transpose(-1, -2).reshape(*a.shape[:-2], k, h, w)
    return resize_grid(x, (H, W)).reshape(*a.shape[:-2], k, H * W).transpose(-1, -2)


# --------------------------------------------------------------------------------------- processor
class RecordingProcessor:
    """Computes attention like diffusers' AttnProcessor2_0, but with the probabilities in hand:
    probs = softmax(Q K^T * scale) (Vaswani et al. eq. 1), shape (B, heads, Q, K), passed to every
    listener, which may record them or return edited ones, before out = probs V. `gates`: one callable per
    hook, true when its hook wants this UNet call; when none does (a step filter that skips the step), the
    layer runs its original processor (SDPA), so unrecorded steps cost what a plain generation does."""

    def __init__(self, name: str, kind: str, original, listeners: list, gates: list | None = None):
        self.name, self.kind, self.original, self.listeners = name, kind, original, listeners
        self.gates = gates or []

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        if self.gates and not any(gate() for gate in self.gates):
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        ndim = hidden_states.ndim
        if ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        batch, seq, _ = hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        attention_mask = attn.prepare_attention_mask(attention_mask, seq, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key, value = attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states)
        heads = attn.heads
        # (B, n, heads*d) -> (B, heads, n, d) as views: no copies, like AttnProcessor2_0
        query, key, value = (t.view(batch, -1, heads, t.shape[-1] // heads).transpose(1, 2) for t in (query, key, value))
        if attn.norm_q is not None:                   # per-head q/k norms, as AttnProcessor2_0 applies them
            query, key = attn.norm_q(query), attn.norm_k(key)
        dtype = query.dtype
        if attn.upcast_attention:
            query, key = query.float(), key.float()
        scores = torch.matmul(query, key.transpose(-1, -2)) * attn.scale                 # (B, heads, Q, K)
        if attention_mask is not None:                # additive mask, (B*heads, 1 or Q, K)
            scores = scores + attention_mask.view(batch, heads, -1, attention_mask.shape[-1])
        probs = (scores.float() if attn.upcast_softmax else scores).softmax(-1).to(dtype)
        for listener in self.listeners:
            edited = listener(self.name, self.kind, probs)
            if edited is not None:
                probs = edited.reshape(probs.shape).to(dtype)
        hidden_states = torch.matmul(probs, value).transpose(1, 2).reshape(batch, -1, heads * value.shape[-1])
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


SUPPORTED = ("AttnProcessor", "AttnProcessor2_0", "RecordingProcessor")


def check_processor(name: str, proc):
    """The recording processor re-implements the plain attention of SD, SDXL and AudioLDM 2; any other
    processor (IP-Adapter, added-KV, LoRA-fused, xformers...) would be silently replaced: refuse at the door."""
    if type(proc).__name__ not in SUPPORTED:
        raise ValueError(f"layer {name} uses {type(proc).__name__}; the hooks record only plain attention "
                         f"({', '.join(SUPPORTED[:2])}). Exclude the layer with `layers=...` or reset it with "
                         "unet.set_default_attn_processor().")


class AttentionHook:
    """The shared mechanism of recording and editing: swap processors in on enter, restore on exit.
    Subclasses implement `_listen(name, kind, probs)`: probs (B, heads, Q, K) of one layer's call; return
    None to leave them, or edited probabilities of the same shape. (Training the toy model's grounding
    loss is one more listener: it keeps the probabilities with their gradients.)"""

    def __init__(self, model, layers: LayerFilter = None, kind: str = "both", steps: StepFilter = None):
        if kind not in ("both", "self", "cross"):
            raise ValueError(f"kind must be 'both', 'self' or 'cross', got {kind!r}")
        self.unet = unet_of(model)
        self.model = model
        self.layers_filter, self.kind, self.steps_filter = layers, kind, steps
        all_layers = attention_layers(self.unet)
        self.layers = [n for n, k in all_layers.items() if (kind == "both" or k == kind) and selects(layers, n)]
        if not self.layers:
            raise ValueError(f"no attention layer matches layers={layers!r}, kind={kind!r}; the UNet has "
                             f"{len(all_layers)} layers, e.g. {list(all_layers)[:3]}")
        self.kinds = {n: all_layers[n] for n in self.layers}
        self.step, self.timesteps, self._saved, self._handle, self.latent_hw = -1, {}, None, None, None

    def _on_unet_call(self, module, args, kwargs):
        self.step += 1
        z = kwargs.get("sample", args[0] if args else None)
        t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        self.latent_hw = tuple(z.shape[-2:])
        self.timesteps[self.step] = float(torch.as_tensor(t).flatten()[0]) if t is not None else None

    def grid(self, q: int) -> tuple[int, int]:
        """The (h, w) grid of a layer with q query positions: the latent's grid downsampled 2^k times."""
        H, W = self.latent_hw
        f = round((H * W / q) ** 0.5)
        if (H // f) * (W // f) != q:
            raise ValueError(f"cannot place {q} query positions on the {H}x{W} latent's grid")
        return (H // f, W // f)

    def __enter__(self):
        if self._saved is not None:
            raise RuntimeError("this hook is already active; make a new one to nest")
        saved = dict(self.unet.attn_processors)                            # the very objects, to restore
        new = {}
        for key, proc in saved.items():
            name = key[: -len(".processor")]
            if name in self.kinds:
                check_processor(name, proc)
                nested = isinstance(proc, RecordingProcessor)
                listeners = (proc.listeners if nested else []) + [self._listen]
                gates = (proc.gates if nested else []) + [self._active]
                new[key] = RecordingProcessor(name, self.kinds[name], proc.original if nested else proc, listeners, gates)
            else:
                new[key] = proc
        self._saved, self.step = saved, -1
        self._handle = self.unet.register_forward_pre_hook(self._on_unet_call, with_kwargs=True)
        self.unet.set_attn_processor(new)                                   # consumes `new`
        return self

    def __exit__(self, *exc):
        self.unet.set_attn_processor(dict(self._saved))
        self._handle.remove()
        self._saved, self._handle = None, None
        return False

    def _active(self) -> bool:
        return self.step >= 0 and selects(self.steps_filter, self.step)

    def _listen(self, name, kind, probs):
        raise NotImplementedError


class AttentionRecorder(AttentionHook):
    """Record attention probabilities per (step, layer, kind) into `self.cache`.

    model: a conceptlab Model, a diffusers pipeline or a UNet.
    layers: which layers (None: all); kind: "both", "self" or "cross"; steps: which UNet calls (None: all).
    heads: "mean" keeps (B, Q, K) per entry; "all" keeps (B, H, Q, K).
    half: None keeps the whole batch; "cond" keeps its second half (the conditional branch under
          classifier-free guidance, where diffusers batches [unconditional, conditional]).
    resolution: resize every map's query grid (and, for self-attention, its key grid) to this side or
          (h, w): all layers then share one grid and memory is fixed per entry.
    max_resolution: shrink (area average) only the grids whose side exceeds this, by a power of two, keeping
          the others: on SD 2.1 at 512 px, 32 turns its 64x64 layers into 32x32 and keeps 32, 16 and 8.
    running_mean: keep one running average per (layer, kind) instead of one entry per step.
    dtype: storage dtype (float16 halves memory).
    Everything (heads="all", no resizing, no running mean) is kept only when asked for.
    """

    def __init__(self, model, layers: LayerFilter = None, kind: str = "both", steps: StepFilter = None,
                 heads: str = "mean", half: str | None = None, resolution: Size | None = None,
                 running_mean: bool = False, dtype: torch.dtype = torch.float32, prompt: str | None = None,
                 max_resolution: int | None = None):
        super().__init__(model, layers, kind, steps)
        if max_resolution is not None and (isinstance(max_resolution, bool) or not isinstance(max_resolution, int)
                                           or max_resolution < 1):
            raise ValueError(f"max_resolution must be a positive integer (a grid side), got {max_resolution!r}")
        if max_resolution is not None and resolution is not None:
            raise ValueError("give resolution (every layer to one grid) or max_resolution (a cap), not both")
        self.max_resolution = max_resolution
        if heads not in ("mean", "all"):
            raise ValueError(f"heads must be 'mean' or 'all', got {heads!r}")
        if half not in (None, "cond"):
            raise ValueError(f"half must be None or 'cond', got {half!r}")
        if resolution is not None:
            _hw(resolution)
        self.heads, self.half, self.resolution, self.running_mean = heads, half, resolution, running_mean
        self.dtype = as_dtype(dtype)
        self.tokens = tokens_of(model, prompt) if prompt is not None else None
        self.cache = self._fresh_cache()

    def _fresh_cache(self) -> AttentionCache:
        cache = AttentionCache(tokens=self.tokens)
        cache.timesteps = self.timesteps
        return cache

    def __enter__(self):
        """Each `with` block records into a new cache (an earlier block's `cache` object is left as it was)."""
        super().__enter__()
        if self.cache.entries or self.cache.counts:
            self.timesteps = {}
            self.cache = self._fresh_cache()
        return self

    def _listen(self, name, kind, probs):                     # probs: (B, H, Q, K)
        if not self._active():
            return None
        a = probs.detach()
        if self.half == "cond":
            if a.shape[0] % 2:
                raise ValueError(f"half='cond' needs a guided batch [uncond, cond], got batch {a.shape[0]}")
            a = a[a.shape[0] // 2:]
        a = a.mean(1) if self.heads == "mean" else a
        grid = self.grid(a.shape[-2])
        size = _hw(self.resolution) if self.resolution else None
        if self.max_resolution and max(grid) > self.max_resolution:
            f = 2 ** math.ceil(math.log2(max(grid) / self.max_resolution))
            size = (max(1, grid[0] // f), max(1, grid[1] // f))
        if size:
            a = resize_queries(a, grid, size)                                  # (..., H*W, K)
            if kind == "self":                                                  # keys are pixels too
                a = resize_queries(a.transpose(-1, -2), grid, size).transpose(-1, -2)
                a = a / a.sum(-1, keepdim=True)                                 # rows stay distributions
            grid = size
        self.cache.grids[name] = grid
        a = a.to(self.dtype)
        if a.untyped_storage().data_ptr() == probs.untyped_storage().data_ptr():
            a = a.clone()                             # a view of probs: keep a copy, not the whole batch
        if self.running_mean:                         # mean_n = mean_{n-1} + (a - mean_{n-1}) / n
            key = ("mean", name, kind)
            n = self.cache.counts[key]
            prev = self.cache.entries.get(key)
            self.cache.entries[key] = a if prev is None else prev + (a - prev) / (n + 1)
            self.cache.counts[key] = n + 1
        else:
            self.cache.entries[(self.step, name, kind)] = a
        return None


class LiveAttention(AttentionHook):
    """Keeps each selected layer's head-mean attention (B, Q, K) of the latest UNet call, *with* its
    gradients, in `self.maps` (layer -> tensor): for losses on attention maps (TokenCompose's grounding
    loss when training toy-shapes, ConceptExpress's EMD alignment when learning tokens)."""

    def __init__(self, model, layers: LayerFilter = None, kind: str = "cross"):
        super().__init__(model, layers, kind)
        self.maps: dict[str, torch.Tensor] = {}

    def _listen(self, name, kind, probs):
        self.maps[name] = probs.mean(1)
        return None


class AttentionEditor(AttentionHook):
    """Prompt-to-prompt reweighting (Hertz et al. 2022) on the same mechanism as recording:
    multiply one token's cross-attention by `scale` (or set it to `value`) in the selected layers and steps.
    The row is not renormalized, as in prompt-to-prompt's reweighting. token: a position, or a word of
    `prompt`. half="cond" edits only the conditional half of a guided batch [uncond, cond]."""

    def __init__(self, model, token: int | str, scale: float | None = None, value: float | None = None,
                 layers: LayerFilter = None, steps: StepFilter = None, prompt: str | None = None,
                 half: str | None = None):
        super().__init__(model, layers, "cross", steps)
        if half not in (None, "cond"):
            raise ValueError(f"half must be None (edit the whole batch) or 'cond' (its second half), got {half!r}")
        self.half = half
        if (scale is None) == (value is None):
            raise ValueError("give exactly one of scale (multiply the token's attention) or value (replace it)")
        if scale is not None:
            scale = as_number(scale, "scale", "the factor on the token's attention, e.g. 3 to strengthen, 0 to mute")
        if value is not None:
            value = as_number(value, "value", "the attention probability to put on the token, e.g. 0.5")
        if isinstance(token, str):
            if prompt is None:
                raise ValueError(f"to edit the word {token!r}, also pass the prompt (prompt=...) to find its position")
            words = tokens_of(model, prompt)
            if token not in words:
                raise ValueError(f"word {token!r} is not among the prompt's tokens {words}")
            token = words.index(token)
        if not isinstance(token, int) or token < 0:
            raise ValueError(f"token must be a word of the prompt or its position (an int >= 0), got {token!r}")
        self.token, self.scale, self.value = token, scale, value

    def _listen(self, name, kind, probs):
        if not self._active():
            return None
        if self.token >= probs.shape[-1]:
            raise ValueError(f"token {self.token} is beyond the {probs.shape[-1]} text positions")
        out = probs.clone()
        rows = slice(out.shape[0] // 2, None) if self.half == "cond" else slice(None)
        col = out[rows, ..., self.token]
        out[rows, ..., self.token] = col * self.scale if self.scale is not None else torch.full_like(col, self.value)
        return out


# ----------------------------------------------------------------------------------- trajectories
_ACTIVE: list["TrajectoryRecorder"] = []
_OWN_LOOP = [0]                 # > 0 while one of conceptlab's own sampling loops is reporting


class own_loop:
    """Context for conceptlab's own sampling loops: they report their steps themselves (with names for
    every branch), so the recorders ignore their raw UNet calls instead of recording them twice."""
    def __enter__(self):
        _OWN_LOOP[0] += 1

    def __exit__(self, *exc):
        _OWN_LOOP[0] -= 1
        return False


def report(step: int, t, z: torch.Tensor, eps: torch.Tensor, branches: dict[str, torch.Tensor], stage: str = "sample"):
    """Called by conceptlab's loops once per step: the latent z_t (B, C, h, w) the step starts from,
    the noise prediction the step used (B, C, h, w), and every branch's prediction by name."""
    for rec in _ACTIVE:
        rec._add(stage, step, t, z, eps, branches)


@dataclass
class Step:
    """One recorded step. Shapes are (B, C, h, w) latents; B is the number of images (not branches)."""
    stage: str                   # "sample", "invert", or a method's own name ("scaled", ...)
    step: int                    # index within its stage
    t: float                     # the timestep
    z: torch.Tensor              # the latent entering the step, z_t
    eps: torch.Tensor            # the noise prediction the step used (the guided mix under guidance)
    x0: torch.Tensor             # predicted clean latent (z_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
    branches: dict               # {name: eps of that branch}, e.g. "uncond", "cond"
    z_next: torch.Tensor | None = None   # the latent the step produced (given by `callback`), if known


class TrajectoryRecorder:
    """Record per step the timestep, the latent, the predicted x_0 and every branch's noise prediction.

    model: a conceptlab Model or a diffusers pipeline (its scheduler gives alpha-bar).
    stages: record only these stages (None: all). guidance: the guidance scale of `pipe(...)` calls, for
    pipelines that do not expose it (AudioLDM 2); SD and SDXL pipelines report their own.
    With `model.generate(...)` or `pipe(...)`, a UNet forward hook sees each call. Under classifier-free
    guidance diffusers batches [uncond, cond]: recorded as branches "uncond" and "cond", and `eps` is
    their mix with the pipeline's own guidance scale. `callback`, passed as `callback_on_step_end`,
    adds each step's resulting latent (`z_next`). conceptlab's own loops (inversion,
    scaling) report their steps directly, with their own stage and branch names.
    `decoded(k)` decodes step k's predicted x_0 on demand: (B, 3, H, W) in [-1, 1].
    """

    def __init__(self, model, stages: list[str] | None = None, guidance: float | None = None):
        self.model, self.unet, self.guidance = model, unet_of(model), guidance
        self.pipe = getattr(model, "pipe", model)
        if not hasattr(self.pipe, "scheduler"):
            raise TypeError("TrajectoryRecorder needs a conceptlab Model or a diffusers pipeline (for its scheduler)")
        self.stages = stages
        self.steps: list[Step] = []
        self._handle = None

    def __enter__(self):
        self.steps = []
        self._handle = self.unet.register_forward_hook(self._on_unet, with_kwargs=True)
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc):
        self._handle.remove()
        _ACTIVE.remove(self)
        return False

    def _on_unet(self, module, args, kwargs, output):
        if _OWN_LOOP[0]:
            return
        z = kwargs.get("sample", args[0] if args else None)
        t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        eps = (output.sample if hasattr(output, "sample") else output[0]).detach()
        sched = self.pipe.scheduler                      # a v-prediction pipeline's output, as the noise it stands for
        eps = as_eps(eps, z.detach(), t, sched.alphas_cumprod, sched.config.get("prediction_type", "epsilon"))
        # the pipeline's own guidance (SD, SDXL expose it while they run); pipelines that keep it in a local
        # variable (AudioLDM 2) need `guidance=` given to the recorder
        w = self.guidance if self.guidance is not None else (
            float(self.pipe.guidance_scale) if getattr(self.pipe, "do_classifier_free_guidance", False) else 1.0)
        if w > 1 and eps.shape[0] % 2 == 0:
            e_u, e_c = eps.chunk(2)
            branches, z, mixed = {"uncond": e_u, "cond": e_c}, z.detach().chunk(2)[1], e_u + w * (e_c - e_u)
        else:
            branches, mixed = {"cond": eps}, eps
        self._add("sample", len(self.stage("sample")), t, z, mixed, branches)

    def callback(self, pipe, i: int, t, callback_kwargs: dict) -> dict:
        """For `pipe(..., callback_on_step_end=rec.callback)`: keeps the step's resulting latent."""
        done = self.stage("sample")
        if done and "latents" in callback_kwargs:
            done[-1].z_next = callback_kwargs["latents"].detach().clone()
        return callback_kwargs

    def _add(self, stage, step, t, z, eps, branches):
        if self.stages is not None and stage not in self.stages:
            return
        t = float(torch.as_tensor(t).flatten()[0])
        abar = self.pipe.scheduler.alphas_cumprod[int(t)]
        self.steps.append(Step(stage, step, t, z.detach().clone(), eps.detach().clone(), predict_x0(z, eps, abar).detach(),
                               {k: v.detach().clone() for k, v in branches.items()}))

    def stage(self, name: str) -> list[Step]:
        """The recorded steps of one stage, in order."""
        return [s for s in self.steps if s.stage == name]

    def decoded(self, k: int | Step) -> torch.Tensor:
        """Step k's (or a Step's) predicted x_0 decoded to an image tensor (B, 3, H, W) in [-1, 1]."""
        st = self.steps[k] if isinstance(k, int) else k
        if hasattr(self.model, "decode"):
            return self.model.decode(st.x0)
        vae = self.pipe.vae
        with torch.no_grad():
            return vae.decode(st.x0.to(vae.dtype) / vae.config.scaling_factor).sample.clamp(-1, 1)
