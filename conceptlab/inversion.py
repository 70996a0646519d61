"""DDIM inversion: run the sampler backwards to find the noise z_T that regenerates a real input.

Notation (book/methods.md): N steps, sampling step i = 0..N-1 from the noisiest timestep to the cleanest;
the inversion keeps every latent in a bank: bank[0] = z_0 (clean) ... bank[N] = z_T, so bank[N - i]
is the latent at the timestep of sampling step i.

Both directions use one deterministic DDIM update (Song et al. 2021, eq. 12, eta = 0):
    x0_hat = (z_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
    z_s    = sqrt(abar_s) x0_hat + sqrt(1 - abar_s) eps
Sampling goes t -> s < t with eps = eps(z_t, t). Inversion (ScalingConcept eq. 3) goes s -> t > s with
eps(z_s, t): the noise is evaluated at the current latent, the approximation DDIM inversion rests on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from . import hooks, renoise
from .checks import as_seed
from .ddim import add_noise, check_steps, ddim_step, ddpm_noise
from .models import Condition, Model

METHODS = ("ddim", "renoise", "ddpm", "renoise-authors")
RENOISE_AVERAGE_BELOW = renoise.NoiseRegularization.below   # ReNoise averages only at low timesteps (book/methods.md)


@dataclass
class Inversion:
    """The result of inverting one input. latents: (N+1, C, h, w) the bank, bank[0] clean, bank[N] = z_T;
    timesteps: (N,) the sampling timesteps, noisiest first; prompt, method, model name for reuse checks."""
    latents: torch.Tensor
    timesteps: torch.Tensor
    prompt: str
    method: str
    model_name: str
    noises: torch.Tensor | None = None      # method "ddpm": (N, C, h, w), the noise map of each sampling step

    @property
    def steps(self) -> int:
        return len(self.timesteps)

    @property
    def z_T(self) -> torch.Tensor:
        return self.latents[-1:]

    def at_step(self, i: int) -> torch.Tensor:
        """The bank latent at the timestep of sampling step i: bank[N - i], (1, C, h, w)."""
        return self.latents[self.steps - i: self.steps - i + 1]

    def save(self, path) -> None:
        """Write to one file (torch.save of plain tensors and strings), to reuse an expensive inversion."""
        torch.save(dict(latents=self.latents.cpu(), timesteps=self.timesteps.cpu(), prompt=self.prompt,
                        method=self.method, model_name=self.model_name,
                        noises=None if self.noises is None else self.noises.cpu()), path)

    @classmethod
    def load(cls, path) -> "Inversion":
        if not Path(path).is_file():
            raise FileNotFoundError(f"no inversion file {str(path)!r}: pass the path an Inversion was saved to (inv.save)")
        d = torch.load(path, weights_only=True)
        return cls(d["latents"], d["timesteps"], d["prompt"], d["method"], d["model_name"], d.get("noises"))

    def noise_at(self, i: int) -> torch.Tensor | None:
        """The noise map sampling step i adds (1, C, h, w), for an edit-friendly ("ddpm") inversion; else None."""
        return None if self.noises is None else self.noises[i: i + 1]


def alpha_pairs(model: Model, timesteps: torch.Tensor) -> list[tuple[float, float]]:
    """`model.alpha_pairs(timesteps)`: per sampling step, (abar at t_i, abar at the next cleaner timestep)."""
    return model.alpha_pairs(timesteps)


@torch.no_grad()
def invert(model: Model, image, prompt: str | list[str], steps: int = 50, method: str = "ddim",
           renoise_steps: int = 1, seed: int = 0) -> Inversion | list[Inversion]:
    """Invert an image (PIL, uint8 array, or tensor (1, 3, H, W) in [-1, 1]) with `prompt`, unguided,
    over the same N timesteps as sampling. Returns the Inversion with its latent bank.

    A list of images is inverted in one batched UNet pass per step (several times faster per image on a
    CPU) and returns a list of Inversions, each equal to inverting its image alone up to float rounding;
    `prompt` is then one prompt for all or a list with one prompt per image.

    method="ddim": eps is evaluated at the current, cleaner latent (ScalingConcept eq. 3).
    method="renoise" (Garibi et al. 2024): after the DDIM estimate of the noisier latent, evaluate eps
    again *at that estimate* `renoise_steps` times, each time redoing the step from the cleaner latent;
    below timestep 250 the step uses the mean of all the estimates, above it the last one. (ReNoise's own
    inversion-time noise regularization, patch-KL and auto-correlation, is not implemented here.)
    method="ddpm": edit-friendly DDPM inversion (Huberman-Spiegelglas et al. 2024): every noisy latent is drawn
    independently from the forward process, z_t = sqrt(abar_t) z_0 + sqrt(1 - abar_t) n_t (seeded by `seed`),
    and each sampling step's noise map is solved so that a stochastic DDPM step lands on the next one exactly:
    the round trip is exact by construction. Sampling from such an inversion adds its noise maps (`noises`).
    method="renoise-authors": ReNoise as ScalingConcept's demo runs it (src/renoise_inversion.py @e201f3a): z_0 a
    sample of the VAE posterior, not its mean; below timestep 250 the estimates [0, 5) are averaged and every
    estimate used is first nudged by ReNoise's noise regularization (`conceptlab.renoise`: patch KL towards
    the prediction at a forward-noised z_0, auto-correlation towards 0); above 250 the estimates [8, 10),
    so with their one renoise step neither happens there. One draw of the seeded generator makes z_0, the
    next the forward noise, the rest the regularization's shifts. It costs one more latent per step than
    "renoise" (the forward-noised one, in the same UNet call as the first estimate).
    Each image of a list draws from its own generator seeded by `seed`, so it is inverted as it would be alone."""
    if method not in METHODS:
        raise ValueError(f"unknown inversion method {method!r}; available: {METHODS}")
    if isinstance(renoise_steps, bool) or not isinstance(renoise_steps, int) or renoise_steps < 0:
        raise ValueError(f"renoise_steps must be an integer >= 0 (ReNoise's default is 1), got {renoise_steps!r}")
    many = isinstance(image, (list, tuple))
    images = list(image) if many else [image]
    if many and not images:
        raise ValueError("invert got an empty list of images")
    if isinstance(prompt, (list, tuple)) and not many:
        raise ValueError("a list of prompts needs a list of images (one prompt per image)")
    prompts = one_each(prompt, len(images), "prompts")
    for p in prompts:
        model.check_prompt(p, allow_empty=True)
    steps = check_steps(steps)
    seed = as_seed(seed)
    authors = method == "renoise-authors"
    if authors:
        renoise.check_shape(model.latent_shape)
    gens = [torch.Generator().manual_seed(seed) for _ in images] if authors else None     # one per image
    z = []
    for k, im in enumerate(images):
        z_k = model.encode(im, sample=True, generator=gens[k]) if authors else model.encode(im)
        if z_k.shape[0] != 1:
            where = f"image {k} of the list is" if many else "got"
            raise ValueError(f"invert takes one image per entry, {where} a batch of {z_k.shape[0]}: "
                             "pass a list of single images to invert several in one batch")
        z.append(z_k)
    z = torch.cat(z)                                                   # (B, C, h, w)
    cond = Condition.cat([model.encode_text(p) for p in prompts])
    timesteps = model.timesteps(steps)
    if method == "ddpm":
        return _edit_friendly(model, z, cond, prompts, timesteps, seed, many)
    if authors:
        return _renoise_authors(model, z, cond, prompts, timesteps, gens, renoise_steps, many)
    bank = [z]
    with hooks.own_loop():
        for k, ((abar_t, abar_s), t) in enumerate(zip(reversed(alpha_pairs(model, timesteps)), timesteps.flip(0))):
            eps = model.eps(z, t, cond)
            hooks.report(k, t, z, eps, {"cond": eps}, stage="invert")
            z_next = ddim_step(z, eps, abar_s, abar_t)     # s -> t, noisier
            if method == "renoise":
                estimates = [eps]
                for _ in range(renoise_steps):             # re-evaluate the noise at the current estimate of z_t
                    estimates.append(model.eps(z_next, t, cond))
                    z_next = ddim_step(z, estimates[-1], abar_s, abar_t)
                if int(t) < RENOISE_AVERAGE_BELOW:
                    z_next = ddim_step(z, torch.stack(estimates).mean(0), abar_s, abar_t)
            z = z_next
            bank.append(z)
    bank = torch.stack(bank)                                           # (N+1, B, C, h, w)
    out = [Inversion(bank[:, b].contiguous(), timesteps, p, method, model.name) for b, p in enumerate(prompts)]
    return out if many else out[0]


def _edit_friendly(model: Model, z0: torch.Tensor, cond: Condition, prompts: list[str], timesteps: torch.Tensor,
                   seed: int, many: bool):
    """Edit-friendly DDPM inversion of clean latents z0 (B, C, h, w): N UNet calls, as DDIM's."""
    pairs = alpha_pairs(model, timesteps)                               # (abar_t, abar_s) per sampling step
    draws = []                                       # per image its own generator: a batch equals each alone
    for _ in range(len(z0)):
        gen = torch.Generator().manual_seed(seed)
        draws.append(torch.stack([torch.randn(z0.shape[1:], generator=gen) for _ in pairs]))   # (N, C, h, w)
    draws = torch.stack(draws, 1).to(z0)                                # (N, B, C, h, w)
    noisy = [add_noise(z0, draws[i], abar_t) for i, (abar_t, _) in enumerate(pairs)]
    bank = [z0] + noisy[::-1]                                           # bank[N - i]: the latent of step i
    noises = []
    with hooks.own_loop():
        for i, ((abar_t, abar_s), t) in enumerate(zip(pairs, timesteps)):
            z_t, z_s = bank[len(pairs) - i], bank[len(pairs) - i - 1]
            eps = model.eps(z_t, t, cond)
            hooks.report(i, t, z_t, eps, {"cond": eps}, stage="invert")
            noises.append(ddpm_noise(z_t, z_s, eps, abar_t, abar_s))
    bank, noises = torch.stack(bank), torch.stack(noises)              # (N+1, B, ...), (N, B, ...)
    out = [Inversion(bank[:, b].contiguous(), timesteps, p, "ddpm", model.name, noises[:, b].contiguous())
           for b, p in enumerate(prompts)]
    return out if many else out[0]


def _renoise_authors(model: Model, z0: torch.Tensor, cond: Condition, prompts: list[str], timesteps: torch.Tensor,
                     gens: list[torch.Generator], renoise_steps: int, many: bool,
                     cfg: renoise.NoiseRegularization = renoise.NoiseRegularization()):
    """ReNoise inversion the authors' way (see `invert`) of sampled clean latents z0 (B, C, h, w), each image
    regularized with its own generator `gens[b]` (already past its posterior draw)."""
    from diffusers.utils.torch_utils import randn_tensor

    forward_noise = torch.cat([randn_tensor((1, *z0.shape[1:]), generator=g, device=z0.device, dtype=z0.dtype)
                               for g in gens])                          # n: one fixed draw per image
    b = len(z0)

    def nudge(e, target):                                                # each image with its own generator
        return torch.cat([renoise.regularize(e[j: j + 1], target[j: j + 1], gens[j], cfg) for j in range(b)])

    z, bank = z0, [z0]
    with hooks.own_loop():
        for k, ((abar_t, abar_s), t) in enumerate(zip(reversed(alpha_pairs(model, timesteps)), timesteps.flip(0))):
            low = int(t) < cfg.below
            first, last = cfg.first_range if low else cfg.range
            rounds = min(cfg.max_first, renoise_steps) if low else renoise_steps
            forward = add_noise(z0, forward_noise, abar_t)              # z_t*: z_0 noised to t with n
            target, eps = model.eps(torch.cat([forward, z]), t, Condition.cat([cond, cond])).chunk(2)
            hooks.report(k, t, z, eps, {"cond": eps}, stage="invert")
            mean = None
            for i in range(rounds + 1):
                if i:
                    eps = model.eps(z_next, t, cond)                    # re-estimate at the current z_t
                if first <= i < last:                                   # running mean of the raw estimates
                    mean = eps if mean is None else mean * (i - first) / (i - first + 1) + eps / (i - first + 1)
                if i >= first:
                    eps = nudge(eps, target)
                z_next = ddim_step(z, eps, abar_s, abar_t)
            if mean is not None:
                z_next = ddim_step(z, nudge(mean, target), abar_s, abar_t)
            z = z_next
            bank.append(z)
    bank = torch.stack(bank)                                           # (N+1, B, C, h, w)
    out = [Inversion(bank[:, j].contiguous(), timesteps, p, "renoise-authors", model.name) for j, p in enumerate(prompts)]
    return out if many else out[0]


def step_noise(invs: list[Inversion], i: int, repeat: int = 1) -> torch.Tensor | None:
    """The batch's noise maps at sampling step i (each inversion's repeated `repeat` times), or None when the
    inversions are deterministic (DDIM, ReNoise). Edit-friendly and deterministic inversions do not mix."""
    kinds = {one.noises is not None for one in invs}
    if len(kinds) > 1:
        raise ValueError("edit-friendly (ddpm) inversions cannot share a batch with DDIM or ReNoise ones")
    if kinds == {False}:
        return None
    return torch.cat([one.noise_at(i).repeat(repeat, 1, 1, 1) for one in invs])


def one_each(value, n: int, what: str) -> list:
    """`value` shared by n inputs, or a list of exactly n values, one per input (prompts, concepts)."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"got {n} inputs but {len(value)} {what}: give one for all or one per input")
        return list(value)
    return [value] * n


def check_inversion(model: Model, inv: Inversion, steps: int):
    """An inversion is reused only with the model, step count and timesteps it was made with."""
    if inv.model_name != model.name:
        raise ValueError(f"this inversion was made with model {inv.model_name!r}, not {model.name!r}: invert again")
    if inv.steps != steps:
        raise ValueError(f"this inversion has {inv.steps} steps but {steps} were asked: invert again with steps={steps}")
    if not torch.equal(inv.timesteps.cpu(), model.timesteps(steps).cpu()):
        raise ValueError("this inversion's timesteps differ from the model's scheduler now: invert again")
    if not torch.isfinite(inv.latents).all():
        raise ValueError("this inversion holds NaN or inf latents (a diverged inversion, or one edited by hand): "
                         "invert again")


@torch.no_grad()
def sample(model: Model, z_T: torch.Tensor, cond: Condition, steps: int, guidance: float = 1.0,
           null: Condition | None = None, noises=None) -> torch.Tensor:
    """Deterministic DDIM sampling from z_T (B, C, h, w) with classifier-free guidance
    eps = eps_null + guidance (eps_c - eps_null) (guidance 1: the conditional prediction alone).
    Returns the clean latent (B, C, h, w)."""
    with hooks.own_loop():
        return model.sample(z_T, cond, steps, guidance, null=null, report=hooks.report, noises=noises)


def reconstruct(model: Model, inv: Inversion | list[Inversion], prompt: str | list[str] | None = None,
                guidance: float = 1.0) -> torch.Tensor:
    """Sample back from the inversion's z_T (with its own prompt by default): image tensor (1, 3, H, W).
    A list of inversions (same step count) is sampled in one batch: (B, 3, H, W), in the order given;
    `prompt` is then None (each its own), one prompt for all, or a list with one prompt per inversion."""
    invs = list(inv) if isinstance(inv, (list, tuple)) else [inv]
    if not invs:
        raise ValueError("reconstruct got an empty list of inversions")
    for one in invs:
        if not isinstance(one, Inversion):
            raise TypeError(f"reconstruct takes Inversions (from invert), got {type(one).__name__}")
        check_inversion(model, one, invs[0].steps)
    prompts = [one.prompt for one in invs] if prompt is None else one_each(prompt, len(invs), "prompts")
    cond = Condition.cat([model.encode_text(p) for p in prompts])
    z_T = torch.cat([one.z_T for one in invs])
    noises = None if step_noise(invs, 0) is None else (lambda i: step_noise(invs, i))      # edit-friendly
    return model.decode(sample(model, z_T, cond, invs[0].steps, guidance, noises=noises))
