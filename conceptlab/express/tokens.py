"""ConceptExpress, part 2: learn one token per concept (Hao et al., ECCV 2024, Sec. 3.3).

    found = express.localize(model, image)
    learned = express.learn_tokens(model, image, found, steps=500)
    model2 = learned.apply(model)                      # a copy of the model that knows "<c0>", "<c1>", ...
    model2.generate("a <c0>")
    learned.save("tokens/"); express.ConceptTokens.load("tokens/")   # diffusers' load_textual_inversion reads the files

The lookup table: concept i -> (token <c_i>, embedding v_i, mask m_i, attention f_i). Only the new
embedding rows train (AdamW; every other row is restored after each update); UNet, VAE and the rest of the
text encoder stay frozen. Three losses:
- masked denoising (eq. 8): ||(eps - eps_theta(z_t, t, "a photo of <c_i>")) * m_i||^2, t ~ U[0, T), averaged
  over the mask (`masked_mean="latent"`: over the whole latent, as the authors' code);
- split-and-merge: for the first `split_steps`, g tokens per concept and a supervised contrastive loss
  (tau 0.07, weight alpha 1e-3) over the normalized split embeddings; then each concept's g tokens merge
  into their mean;
- attention alignment (eq. 11): EMD between the token's cross-attention map (averaged over the layers at
  16x16, or the finest, and over heads; normalized) and f_i on the same grid, ground cost the Euclidean
  distance between cells, with POT (autograd through the exact solver), weight beta 1e-5.
After the merge the official code also trains the joint prompt "a photo of <c_0> and <c_1> ..." with the
union of the masks (`joint=True`).

Three schedules. The authors' code trains every prompt of the table every step: before the merge each of the
N x g split tokens, after it each of the N tokens and the joint prompt, so every split token gets all
`split_steps` updates and the merge averages g tokens that each learned the concept from their own random
start (`schedule="official"`). It takes one optimizer step per prompt; we put the prompts in one batch, each
with its own t and noise, and take one step: every row gets the same gradients, since a row appears only in
its own prompt and the joint one (the contrastive term, which it adds at each of its P updates, weighs P).
The default `schedule="sampled"` trains one random prompt a step (a split token gets about
split_steps / (N g) updates before the merge), one UNet call a step; every number in the benchmark and the
notebooks so far was measured with it. `schedule="authors"` is their loop itself, one update per prompt
(`_authors_updates`); `AUTHORS` sets it with the rest of their recipe.
"""
from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..hooks import LiveAttention, resize_grid
from ..checks import as_seed
from ..images import one_image

AUTHORS_PLACEHOLDERS = 50            # the authors' train.sh adds 50 placeholder tokens (their init reads row V - 100 + p)
AUTHORS = dict(schedule="authors", init="vocabulary", masked_mean="latent", emd="sinkhorn", g=5, lr=5e-4,
               weight_decay=1e-2, tau=0.07, alpha=1e-3, beta=1e-5, joint=True, split_merge=True, align=True)
"""learn_tokens(model, image, concepts, **AUTHORS): the authors' training (train.sh and train.py @db1dc61): their
update order and optimizer state (`_authors_updates`), tokens started as copies of vocabulary rows, eq. 8 over the
whole latent, eq. 11 by their unconverged Sinkhorn, their weights. book/methods.md says what is left out."""


@dataclass
class ConceptTokens:
    """Learned tokens. tokens: ["<c0>", ...]; embeddings: (N, D); masks: (N, H, W) bool at image size;
    curves: per-step losses ({"masked": [...], "contrastive": [...], "emd": [...]});
    split_similarity: per split step, each concept's mean cosine similarity among its g split tokens."""
    tokens: list[str]
    embeddings: torch.Tensor
    masks: np.ndarray
    curves: dict = field(default_factory=dict)
    split_similarity: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def apply(self, model):
        """A new Model whose tokenizer and text encoder (copies) know the learned tokens; UNet, VAE and
        scheduler are shared. The model passed in is not modified."""
        from ..models import Model

        tok, enc = copy.deepcopy(model.tokenizer), copy.deepcopy(model.text_encoder)
        ids = add_tokens(tok, enc, self.tokens)
        with torch.no_grad():
            enc.get_input_embeddings().weight[ids] = self.embeddings.to(enc.dtype)
        return Model(_replace(model.pipe, tokenizer=tok, text_encoder=enc), f"{model.name}+{len(self.tokens)} tokens",
                     toy=model.toy, audio=model.audio, random_weights=model.random_weights, training=model.training)

    def save(self, folder) -> list[Path]:
        """One safetensors file per token, {token: embedding (D,)}: the format diffusers'
        `pipe.load_textual_inversion(path, token=...)` reads; plus tokens.json (masks, curves, settings)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, (t, e) in enumerate(zip(self.tokens, self.embeddings)):
            paths.append(folder / f"concept_{i}.safetensors")
            save_file({t: e.detach().contiguous().clone()}, paths[-1])
        (folder / "tokens.json").write_text(json.dumps(dict(
            tokens=self.tokens, masks=self.masks.astype(int).tolist(), curves=self.curves,
            split_similarity=self.split_similarity, settings=self.settings)))
        return paths

    @classmethod
    def load(cls, folder) -> "ConceptTokens":
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / "tokens.json").exists():
            raise FileNotFoundError(f"{folder} holds no tokens.json: pass a folder written by ConceptTokens.save")
        meta = json.loads((folder / "tokens.json").read_text())
        emb = [load_file(folder / f"concept_{i}.safetensors")[t] for i, t in enumerate(meta["tokens"])]
        return cls(meta["tokens"], torch.stack(emb), np.array(meta["masks"], bool), meta["curves"],
                   meta["split_similarity"], meta["settings"])


def _replace(pipe, **parts):
    """The same pipeline class over the same components, with some replaced (no copy of the others)."""
    import inspect

    comps = {**pipe.components, **parts}
    kw = {"requires_safety_checker": False} if "requires_safety_checker" in inspect.signature(type(pipe)).parameters else {}
    new = type(pipe)(**comps, **kw)
    new.set_progress_bar_config(disable=True)
    return new


def add_tokens(tokenizer, text_encoder, tokens: list[str]) -> list[int]:
    """Add placeholder tokens to a tokenizer and grow the text encoder's embedding table; returns their ids."""
    clash = [t for t in tokens if t in tokenizer.get_vocab()]
    if clash:
        raise ValueError(f"the tokenizer already has {clash}: choose other placeholder names")
    tokenizer.add_tokens(tokens)
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)   # rows are set by the caller
    return tokenizer.convert_tokens_to_ids(tokens)


def as_concepts(concepts, size: tuple[int, int]) -> tuple[np.ndarray, list[torch.Tensor | None]]:
    """A Localization, a list of Concepts, or masks (N, H, W) -> (masks (N, H, W) bool, per concept its
    distribution f_i as a map (h, w) on its attention grid, or None for bare masks)."""
    from .localize import Localization

    if isinstance(concepts, Localization):
        concepts = concepts.concepts
    if isinstance(concepts, (list, tuple)) and concepts and hasattr(concepts[0], "mask"):
        return np.stack([c.mask for c in concepts]), [c.distribution.view(c.grid_mask.shape) for c in concepts]
    masks = np.asarray(concepts)
    if masks.ndim != 3 or masks.shape[1:] != tuple(size) or not len(masks):
        raise ValueError(f"concepts must be a Localization, a list of Concepts, or masks (N, {size[0]}, {size[1]}); "
                         f"got {getattr(masks, 'shape', type(concepts).__name__)}")
    if not masks.reshape(len(masks), -1).any(1).all():
        raise ValueError("a concept mask is empty: every concept needs at least one pixel")
    return masks.astype(bool), [None] * len(masks)


@functools.lru_cache(maxsize=8)
def cell_cost(grid: tuple[int, int]) -> torch.Tensor:
    """Euclidean distance between the cells of a grid: the EMD's ground cost (n, n), in cells, float64.
    Cached (one per grid size; do not modify it): every EMD of a learning run shares it."""
    ys, xs = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    pts = torch.stack([ys.flatten(), xs.flatten()], 1).float()
    return torch.cdist(pts, pts).double()


def to_grid(m: torch.Tensor, src: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """A non-negative map (n_src,) on `src` -> a distribution (n,) on `grid` (hooks.resize_grid: area when
    shrinking, bilinear when growing)."""
    x = resize_grid(m.float().reshape(*src), grid).flatten().clamp_min(0)
    return x / x.sum().clamp_min(1e-12)


def supervised_contrastive(emb: torch.Tensor, labels: torch.Tensor, tau: float = 0.07) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) over normalized embeddings (m, D) with concept labels (m,):
    mean over anchors and positives of -log softmax over all others of cos/tau."""
    z = F.normalize(emb, dim=1)
    sim = z @ z.T / tau
    self_mask = torch.eye(len(z), dtype=torch.bool)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    return -(log_prob.masked_fill(~pos, 0).sum(1) / pos.sum(1).clamp_min(1)).mean()


class TokenTable:
    """The lookup table being learned: copies of the tokenizer and text encoder with the placeholder tokens
    added (split tokens <c_i_k> and final tokens <c_i>); only `trainable` rows may change."""

    def __init__(self, model, n: int, g: int, split_merge: bool, gen: torch.Generator, init: str = "random"):
        self.tok, self.enc = copy.deepcopy(model.tokenizer), copy.deepcopy(model.text_encoder)
        self.final = [f"<c{i}>" for i in range(n)]
        self.split = [[f"<c{i}_{k}>" for k in range(g)] for i in range(n)] if split_merge else [[t] for t in self.final]
        scale_rows = len(self.tok)                                # the original rows set the init scale
        self.ids_final = add_tokens(self.tok, self.enc, self.final)
        self.ids_split = [add_tokens(self.tok, self.enc, s) for s in self.split] if split_merge else \
            [[i] for i in self.ids_final]
        self.enc.requires_grad_(False)
        self.weight = self.enc.get_input_embeddings().weight
        with torch.no_grad():
            if init == "vocabulary":      # the authors': placeholder p = j n + i copies row V - 2 A + p, A = 50
                for i, ids in enumerate(self.ids_split):
                    for j, row in enumerate(ids):
                        self.weight[row] = self.weight[(scale_rows - 2 * AUTHORS_PLACEHOLDERS + j * n + i) % scale_rows]
            else:                                                 # random, at the table's scale
                scale = self.weight[:scale_rows].std()
                for row in self.split_rows:
                    self.weight[row] = torch.randn(self.weight.shape[1], generator=gen) * scale
        self.frozen = self.weight.detach().clone()
        self.weight.requires_grad_(True)
        self.trainable = torch.zeros(len(self.weight), dtype=torch.bool)
        self.trainable[self.split_rows] = True

    @property
    def split_rows(self) -> list[int]:
        return [i for ids in self.ids_split for i in ids]

    def merge(self, into_first: bool = False) -> None:
        """Split-and-merge: each concept's g split embeddings -> their mean, now the only trainable rows.
        into_first=True (the authors' code): the mean goes into each concept's first split row, which goes on
        as the concept's token; every split row stays trainable (their optimizer keeps moving them all)."""
        with torch.no_grad():
            for i, ids in enumerate(self.ids_split):
                self.weight[ids[0] if into_first else self.ids_final[i]] = self.weight[ids].mean(0)
        if into_first:                       # the tokens are now these rows (prompts name them by split[i][0])
            self.ids_final = [ids[0] for ids in self.ids_split]
            return
        self.frozen = self.weight.detach().clone()
        self.trainable[:] = False
        self.trainable[self.ids_final] = True

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (hidden states (P, L, D) with gradients to the table, token ids (P, L))."""
        ids = self.tok(prompts, padding="max_length", max_length=self.tok.model_max_length, truncation=True,
                       return_tensors="pt").input_ids
        return self.enc(ids)[0], ids

    def restore(self) -> None:
        """After an update: every row that is not being learned goes back to its value."""
        with torch.no_grad():
            self.weight[~self.trainable] = self.frozen[~self.trainable]


def learn_tokens(model, image, concepts, steps: int = 500, split_steps: int | None = None, g: int = 5,
                 lr: float = 5e-4, weight_decay: float = 1e-2, tau: float = 0.07, alpha: float = 1e-3,
                 beta: float = 1e-5, split_merge: bool = True, align: bool = True, joint: bool = True,
                 template: str | None = None, schedule: str = "sampled", seed: int = 0,
                 progress: bool = True, record_gradients: bool = False, masked_mean: str = "mask", init: str = "random",
                 emd: str = "exact") -> ConceptTokens:
    """Learn one token per concept of `image` (PIL, uint8 array, or tensor in [-1, 1]).
    concepts: a Localization (from localize), its concepts, or masks (N, H, W) (then f_i is the mask itself).
    template: the prompt around a token ("a photo of {}" on real models; "a {}" on the toy models, whose
    vocabulary has no "photo"). split_merge=False, align=False, joint=False: Break-A-Scene-dagger.
    schedule: "sampled" (one UNet call a step: a random prompt of the table) or "official" (every prompt
    every step, the prompts of a step in one batched update where the authors' code takes one update each; see the
    module doc), several times slower (the README has the timing)
    or "authors" (their loop: one update per prompt, see `_authors_updates`).
    masked_mean: how eq. 8's squared error is averaged: "mask" (over the concept's mask: each concept weighs the
    same, whatever its size) or "latent" (over the whole latent, as the authors' code's F.mse_loss of the masked
    tensors: a concept weighs its share of the latent, so the contrastive and EMD terms weigh more beside it).
    record_gradients: also record, per step, the norm of each loss term's gradient on the rows being learned
    (curves "grad_masked", "grad_contrastive", "grad_emd"): which term drives the tokens. It costs a backward
    pass per term and leaves the result unchanged.
    split_steps=None: the paper's 100 of 500 steps, in proportion (round(0.2 steps), at least 1).
    init: "random" (ours: Gaussian rows at the table's scale) or "vocabulary" (the authors': copies of vocabulary
    rows, see `TokenTable`). emd: "exact" (POT, what eq. 11 asks) or "sinkhorn" (the authors' unconverged
    solver and gradient, `sinkhorn_loss`).
    schedule="authors": the authors' training loop (`_authors_updates`); `**AUTHORS` sets it with their other
    choices. Deterministic for a seed on the CPU. The model passed in is not modified."""
    from tqdm.auto import tqdm

    if model.kind != "sd":
        raise ValueError(f"learn_tokens supports SD 1.x/2.x-family models (one text encoder); {model.name} is "
                         f"{model.kind}, whose two text encoders it does not learn: use an SD 1.x/2.x checkpoint "
                         f"(the paper's is stabilityai/stable-diffusion-2-1-base)")
    if split_steps is None and isinstance(steps, int) and not isinstance(steps, bool):
        split_steps = max(1, round(0.2 * steps))
    for name, v in dict(steps=steps, g=g).items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if masked_mean not in ("mask", "latent"):
        raise ValueError(f"masked_mean must be 'mask' (the mean over the concept's mask) or 'latent' (over the whole "
                         f"latent, as the authors' code), got {masked_mean!r}")
    if schedule not in ("sampled", "official", "authors"):
        raise ValueError(f"schedule must be 'sampled' (one prompt a step), 'official' (every prompt every step) or "
                         f"'authors' (every prompt every step, one update each), got {schedule!r}")
    if init not in ("random", "vocabulary"):
        raise ValueError(f"init must be 'random' or 'vocabulary' (copies of vocabulary rows, as the authors), got {init!r}")
    if emd not in ("exact", "sinkhorn"):
        raise ValueError(f"emd must be 'exact' (POT) or 'sinkhorn' (the authors' solver), got {emd!r}")
    if schedule == "authors" and (not split_merge or record_gradients):
        raise ValueError("schedule='authors' is the authors' split-and-merge loop: it needs split_merge=True and does "
                         "not record gradients")
    if split_merge and not 0 < split_steps < steps:
        raise ValueError(f"split_steps must be between 1 and steps - 1 ({steps - 1}), got {split_steps}")
    seed = as_seed(seed)
    x = one_image(image, model.image_size, "learn_tokens")
    masks, dists = as_concepts(concepts, tuple(x.shape[-2:]))
    n = len(masks)
    template = template or ("a {}" if model.toy else "a photo of {}")
    if not isinstance(template, str) or template.count("{}") != 1:
        raise ValueError(f"template must hold one '{{}}' where the token goes, e.g. 'a photo of {{}}', got {template!r}")
    g = g if split_merge else 1
    gen = torch.Generator().manual_seed(seed)
    table = TokenTable(model, n, g, split_merge, gen, init)
    if joint and n > 1:                                     # the longest prompt must fit, never be cut
        longest = len(table.tok(template.format(" and ".join(table.final))).input_ids)
        if longest > table.tok.model_max_length:
            raise ValueError(f"the joint prompt of {n} concepts is {longest} tokens but {model.name} reads at most "
                             f"{table.tok.model_max_length}: pass joint=False, or fewer concepts")

    with torch.no_grad():                                   # the image and its flip, latents and masks
        z = torch.cat([model.encode(x), model.encode(torch.flip(x, dims=[-1]))])           # (2, C, h, w)
    m_lat = F.interpolate(torch.from_numpy(masks).float()[:, None], size=tuple(z.shape[-2:]), mode="area")[:, 0]
    m_lat = torch.stack([m_lat, torch.flip(m_lat, dims=[-1])], 1)                          # (N, 2, h, w)
    f = [[_distribution(dists[i], masks[i], flipped) for flipped in (0, 1)] for i in range(n)]   # f_i, per flip
    v_pred = model.scheduler.config.get("prediction_type", "epsilon") == "v_prediction"
    alphas, T = model.alphas_cumprod, len(model.alphas_cumprod)
    curves, sims = {"masked": [], "contrastive": [], "emd": []}, []
    if record_gradients:
        curves.update(grad_masked=[], grad_contrastive=[], grad_emd=[])
    targets = {}                                            # f_i on the attention grid, per (concept, flip)
    eq11 = sinkhorn_loss if emd == "sinkhorn" else emd_loss
    opt = torch.optim.AdamW([table.weight], lr=lr, weight_decay=weight_decay)
    listen = LiveAttention(model.unet, kind="cross")
    flags = [p.requires_grad for p in model.unet.parameters()]
    model.unet.requires_grad_(False)                        # frozen (restored below)
    try:
        with listen:
            if schedule == "authors":
                _authors_updates(model, x, m_lat, f, dists, masks, table, template, steps, split_steps, lr,
                                 weight_decay, tau, alpha, beta, align, joint, emd, gen, listen, curves, sims, progress)
            else:
                for step in tqdm(range(steps), desc="learning tokens", disable=not progress):
                    merged = not split_merge or step >= split_steps
                    if split_merge and step == split_steps:
                        table.merge()
                        opt = torch.optim.AdamW([table.weight], lr=lr, weight_decay=weight_decay)
                    flip, words = _step_prompts(table, merged, joint and merged and n > 1, schedule, gen)
                    P = len(words)                                  # one batch, each prompt its own t and noise
                    mask = torch.stack([m_lat[ks, flip].amax(0) for _, ks in words])                # (P, h, w)
                    t = torch.randint(T, (P,), generator=gen)
                    noise = torch.randn((P, *z.shape[1:]), generator=gen)
                    a_t = alphas[t].view(P, 1, 1, 1)
                    z0 = z[flip:flip + 1]
                    z_t = a_t.sqrt() * z0 + (1 - a_t).sqrt() * noise
                    hidden, ids = table.encode([template.format(" and ".join(w)) for w, _ in words])  # (P, L, D), (P, L)
                    pred = model.unet(z_t, t, encoder_hidden_states=hidden).sample
                    target = a_t.sqrt() * noise - (1 - a_t).sqrt() * z0 if v_pred else noise
                    count = (mask.sum((1, 2)) * pred.shape[1]).clamp_min(1) if masked_mean == "mask" else pred[0].numel()
                    per_prompt = (((pred - target) * mask[:, None]) ** 2).sum((1, 2, 3)) / count       # eq. 8, (P,)
                    masked = per_prompt.mean()
                    terms, con, emd_v = {"masked": per_prompt.sum()}, torch.zeros(()), torch.zeros(())
                    if not merged:                                  # supervised contrastive over the split tokens
                        labels = torch.arange(n).repeat_interleave(g)
                        con = supervised_contrastive(table.weight[table.split_rows], labels, tau)
                        terms["contrastive"] = P * alpha * con      # the official code adds it at each of its P updates
                    if align and (schedule == "official" or len(words[0][1]) == 1):   # eq. 11 ("sampled": not the joint)
                        emds = []
                        for b, (w, ks) in enumerate(words):
                            for k, word in zip(ks, w):
                                pos = int((ids[b] == table.tok.convert_tokens_to_ids(word)).nonzero()[0, 0])
                                a, grid = _token_map(listen.maps, b, pos)
                                if (k, flip) not in targets:
                                    targets[k, flip] = to_grid(f[k][flip], _grid_of(dists[k], masks[k]), grid)
                                emds.append(eq11(a, targets[k, flip], grid))
                        emds = torch.stack(emds)
                        emd_v, terms["emd"] = emds.mean(), beta * emds.sum()
                    if record_gradients:
                        for key in ("masked", "contrastive", "emd"):
                            curves[f"grad_{key}"].append(_grad_norm(terms[key], table) if key in terms else 0.0)
                    loss = sum(terms.values())
                    opt.zero_grad()
                    loss.backward()
                    table.weight.grad[~table.trainable] = 0
                    opt.step()
                    table.restore()                                 # only the learned rows change
                    if not merged:
                        sims.append([float(_mean_pairwise_cos(table.weight[ids].detach())) for ids in table.ids_split])
                    for key, v in (("masked", masked), ("contrastive", con), ("emd", emd_v)):
                        curves[key].append(float(v.detach()))
    finally:
        for p, flag in zip(model.unet.parameters(), flags):
            p.requires_grad_(flag)
    emb = table.weight.detach()[table.ids_final].clone()
    settings = dict(steps=steps, split_steps=split_steps if split_merge else 0, g=g, lr=lr, weight_decay=weight_decay,
                    tau=tau, alpha=alpha, beta=beta, split_merge=split_merge, align=align, joint=joint, schedule=schedule,
                    template=template, seed=seed, model=model.name, masked_mean=masked_mean, init=init, emd=emd)
    return ConceptTokens(table.final, emb, masks, curves, sims, settings)


def _authors_updates(model, x, m_lat, f, dists, masks, table, template, steps, split_steps, lr, weight_decay, tau, alpha,
                     beta, align, joint, emd, gen, listen, curves, sims, progress) -> None:
    """The authors' training loop (train.py and TokenManager @db1dc61, book/methods.md), on `table` in place.
    Each step draws a flip, then takes one AdamW update per prompt, in their order: before the merge each split
    token (j-major: <c0_0>, <c1_0>, ..., <c0_1>, ...), after it each concept's token and the joint prompt. Per
    update: a fresh sample of the VAE posterior, its own t and noise; eq. 8 averaged over the whole latent; eq. 11
    on f_i brought to the attention grid by nearest sampling (their F.interpolate), by `emd`; before the merge
    the contrastive term over all split tokens. The merge writes each concept's mean into its first split row
    and keeps the optimizer and its state; every placeholder row stays trainable (AdamW's momentum and decay
    move them all at each update, as theirs). Their code also feeds the UNet the image twice per update (two
    draws; eq. 8 reads the second, the attention averages both) and runs in float16: not reproduced here."""
    from tqdm.auto import tqdm

    n, g = len(table.split), len(table.split[0])
    order = [(table.split[i][j], i) for j in range(g) for i in range(n)]        # their placeholder order
    order_ids = torch.tensor([table.tok.convert_tokens_to_ids(w) for w, _ in order])
    labels = torch.tensor([i for _, i in order])
    v_pred = model.scheduler.config.get("prediction_type", "epsilon") == "v_prediction"
    alphas, T = model.alphas_cumprod, len(model.alphas_cumprod)
    eq11 = sinkhorn_loss if emd == "sinkhorn" else emd_loss
    opt = torch.optim.AdamW([table.weight], lr=lr, weight_decay=weight_decay)
    targets = {}
    for step in tqdm(range(steps), desc="learning tokens", disable=not progress):
        merged = step >= split_steps
        if step == split_steps:
            table.merge(into_first=True)                        # same optimizer, same state
        flip = int(torch.randint(2, (1,), generator=gen))
        words = [([w], [i]) for w, i in order] if not merged else \
            [([table.split[i][0]], [i]) for i in range(n)] + \
            ([([table.split[i][0] for i in range(n)], list(range(n)))] if joint and n > 1 else [])
        xin = torch.flip(x, dims=[-1]) if flip else x
        for w, ks in words:
            with torch.no_grad():
                z0 = model.encode(xin, sample=True, generator=gen)                   # (1, C, h, w), a fresh draw
            t = torch.randint(T, (1,), generator=gen)
            noise = torch.randn(z0.shape, generator=gen)
            a_t = alphas[t].view(1, 1, 1, 1)
            z_t = a_t.sqrt() * z0 + (1 - a_t).sqrt() * noise
            hidden, ids = table.encode([template.format(" and ".join(w))])
            pred = model.unet(z_t, t, encoder_hidden_states=hidden).sample
            target = a_t.sqrt() * noise - (1 - a_t).sqrt() * z0 if v_pred else noise
            mask = m_lat[ks, flip].amax(0)                                           # (h, w)
            masked = (((pred - target) * mask) ** 2).mean()                          # eq. 8 over the whole latent
            loss, emd_v, con = masked, torch.zeros(()), torch.zeros(())
            if align:
                emds = []
                for k, word in zip(ks, w):
                    pos = int((ids[0] == table.tok.convert_tokens_to_ids(word)).nonzero()[0, 0])
                    a, grid = _token_map(listen.maps, 0, pos)
                    if (k, flip, grid) not in targets:                               # their nearest resize
                        src = _grid_of(dists[k], masks[k])
                        targets[k, flip, grid] = F.interpolate(f[k][flip].float().view(1, 1, *src), size=grid)[0, 0].flatten()
                    emds.append(eq11(a, targets[k, flip, grid], grid))
                emd_v = torch.stack(emds).sum()
                loss = loss + beta * emd_v
            if not merged:
                con = supervised_contrastive(table.weight[order_ids], labels, tau)
                loss = loss + alpha * con
            opt.zero_grad()
            loss.backward()
            table.weight.grad[~table.trainable] = 0
            opt.step()
            table.restore()
            for key, v in (("masked", masked), ("contrastive", con), ("emd", emd_v)):
                curves[key].append(float(v.detach()))
        if not merged:
            sims.append([float(_mean_pairwise_cos(table.weight[ids].detach())) for ids in table.ids_split])


def _step_prompts(table: TokenTable, merged: bool, joint: bool, schedule: str, gen: torch.Generator):
    """One step's image flip and prompts [(their tokens, those tokens' concept indices)]; a prompt with
    several tokens is the joint one, "<c0> and <c1> ...".
    "official": every token of the table (each split token before the merge) and, after it, the joint prompt.
    "sampled": one of them at random (a concept, or the joint prompt; before the merge a random split token of
    the concept)."""
    n = len(table.final)
    if schedule == "official":
        flip = int(torch.randint(2, (1,), generator=gen))
        words = [([w], [i]) for i in range(n) for w in (table.final[i:i + 1] if merged else table.split[i])]
        return flip, words + ([(table.final, list(range(n)))] if joint else [])
    k = int(torch.randint(n + int(joint), (1,), generator=gen))
    flip = int(torch.randint(2, (1,), generator=gen))
    if k == n:
        return flip, [(table.final, list(range(n)))]
    split = table.split[k][int(torch.randint(len(table.split[k]), (1,), generator=gen))]
    return flip, [([table.final[k] if merged else split], [k])]


def emd_loss(a: torch.Tensor, b: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Earth mover's distance between two distributions on a grid (n,), ground cost = Euclidean distance
    between cells (eq. 11). POT's exact solver with the torch backend: differentiable in a and b."""
    import ot

    a = a.double() / a.sum()
    b = b.double() / b.sum()
    return ot.emd2(a, b, cell_cost(tuple(grid)))


def _sinkhorn(mu: torch.Tensor, nu: torch.Tensor, cost: torch.Tensor, reg: float, iterations: int):
    """Log-domain Sinkhorn between distributions mu (n,) and nu (m,) under cost (n, m), from uniform
    potentials -> (sum(plan * cost), plan, log_u, log_v)."""
    log_k = -cost / reg                                                 # (n, m) log kernel
    log_mu, log_nu = mu.clamp_min(1e-300).log(), nu.clamp_min(1e-300).log()
    log_u = torch.full_like(mu, -float(np.log(len(mu))))
    log_v = torch.full_like(nu, -float(np.log(len(nu))))
    for _ in range(iterations):                                         # alternate the two marginals
        log_v = log_nu - torch.logsumexp(log_k + log_u[:, None], 0)
        log_u = log_mu - torch.logsumexp(log_k + log_v[None, :], 1)
    plan = (log_u[:, None] + log_k + log_v[None, :]).exp()
    return (plan * cost).sum(), plan, log_u, log_v


class _AuthorsSinkhorn(torch.autograd.Function):
    """The authors' Sinkhorn loss (emd/emd.py SinkhornOT @db1dc61): the transport cost forward, and backward
    the dual potentials times reg as the gradients of the two distributions (not the cost's own gradient)."""

    @staticmethod
    def forward(ctx, mu, nu, cost, reg, iterations):
        value, _, log_u, log_v = _sinkhorn(mu.detach(), nu.detach(), cost, reg, iterations)
        ctx.save_for_backward(log_u, log_v)
        ctx.reg = reg
        return value

    @staticmethod
    def backward(ctx, grad):
        log_u, log_v = ctx.saved_tensors
        return grad * log_u * ctx.reg, grad * log_v * ctx.reg, None, None, None


def sinkhorn_loss(a: torch.Tensor, b: torch.Tensor, grid: tuple[int, int], reg: float = 1e-3,
                  iterations: int = 200) -> torch.Tensor:
    """Eq. 11 as the authors' code computes it (ptp_utils.wasser_loss @db1dc61): `a` the token's attention and `b`
    f_i on a grid (n,), each normalized; Sinkhorn from b to a (`sinkhorn_emd`), with their gradient
    (`_AuthorsSinkhorn`). learn_tokens(emd="sinkhorn") uses it."""
    return _AuthorsSinkhorn.apply(b.double() / b.sum(), a.double() / a.sum(), cell_cost(tuple(grid)), reg, iterations)


def sinkhorn_emd(a: torch.Tensor, b: torch.Tensor, grid: tuple[int, int], reg: float = 1e-3,
                 iterations: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropic optimal transport between two distributions on a grid (n,), solved the way the ConceptExpress
    code solves eq. 11 (emd/emd.py @db1dc61: log-domain Sinkhorn, reg 1e-3, 200 iterations, ground cost the
    Euclidean distance in cells). Returns (the transport cost sum(plan * cost), the plan (n, n)).
    With reg 1e-3 the kernel exp(-cost / reg) is the identity to float precision (exp(-1000) off the diagonal),
    so 200 iterations leave a plan that is almost all diagonal and a cost near 0 whatever a and b are; the
    exact EMD (`emd_loss`) is what eq. 11 asks for. A larger reg (0.05, more iterations) comes close to it."""
    value, plan, _, _ = _sinkhorn(a.double() / a.sum(), b.double() / b.sum(), cell_cost(tuple(grid)), reg, iterations)
    return value, plan


def _token_map(maps: dict, b: int, position: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Batch element b's cross-attention to the token at `position` (n,), averaged over the layers at 16x16
    (the finest when there are none) and over heads (LiveAttention keeps head means), and its grid."""
    grids = {name: int(round(a.shape[1] ** 0.5)) for name, a in maps.items()}
    side = 16 if 16 in grids.values() else max(grids.values())
    sel = [a[b, :, position] for name, a in maps.items() if grids[name] == side]
    return torch.stack(sel).mean(0), (side, side)


def _grid_of(dist, mask) -> tuple[int, int]:
    return tuple(mask.shape) if dist is None else tuple(dist.shape)


def _distribution(dist, mask, flipped: int) -> torch.Tensor:
    """f_i (n,) on its grid (or the mask as a distribution), mirrored for the flipped image."""
    d = torch.from_numpy(np.asarray(mask, np.float32)) if dist is None else dist.float()
    return (torch.flip(d, dims=[-1]) if flipped else d).flatten()


def _grad_norm(term: torch.Tensor, table: TokenTable) -> float:
    """The norm of one loss term's gradient on the rows being learned (the graph is kept for the others)."""
    grad, = torch.autograd.grad(term, table.weight, retain_graph=True)
    return float(grad[table.trainable].norm())


def _mean_pairwise_cos(e: torch.Tensor) -> torch.Tensor:
    z = F.normalize(e, dim=1)
    s = z @ z.T
    k = len(z)
    return (s.sum() - k) / max(k * (k - 1), 1)
