"""ReNoise's own noise regularization (Garibi et al. 2024), as ScalingConcept's demo runs it: method
"renoise-authors" of `conceptlab.invert` (book/methods.md, "Where the authors' code differs").

Not ScalingConcept's memory-bank regularization (that one acts while *sampling*, scaling.py). This one acts
while *inverting*: each noise estimate eps (1, C, h, w) is nudged, by a few gradient steps, towards what
noise should look like:
- patch KL: in every 4 x 4 patch of every group of 4 channels, the mean and variance of eps are pulled
  towards those of eps* = eps(z_t*, t), the prediction at z_t* = sqrt(abar_t) z_0 + sqrt(1 - abar_t) n, a
  forward-noised latent with one fixed draw n;
- auto-correlation: the squared correlation of eps with itself rolled by a random shift, over a pyramid of
  2x average-pooled copies, is pushed to 0 (white noise has none).
The shifts are drawn from the generator the whole inversion shares (after z_0's posterior draw and n), so a
seed fixes everything. Defaults: the authors' RunConfig (src/config.py @e201f3a).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class NoiseRegularization:
    """ReNoise's inversion-time settings, the authors' RunConfig defaults."""
    lambda_kl: float = 0.065           # step size of the patch-KL gradient
    lambda_ac: float = 20.0            # step size of the auto-correlation gradient
    steps: int = 4                     # outer rounds
    rolls: int = 5                     # auto-correlation gradients per round, each with fresh shifts
    patch: int = 4                     # spatial patch side and channels per group
    first_range: tuple = (0, 5)        # below `below`: estimates i in [0, 5) are averaged and regularized
    range: tuple = (8, 10)             # above it: [8, 10) (so with 1 renoise step, nothing is)
    below: int = 250                   # the timestep under which first_range applies
    max_first: int = 5                 # at most this many renoise steps below `below`


def patch_kl(eps: torch.Tensor, target: torch.Tensor, patch: int = 4) -> torch.Tensor:
    """Sum over 4 x 4 patches and channels of |KL| between Gaussians fitted to eps and to target, both
    (1, C, h, w) with C, h, w multiples of `patch`: a scalar. Per patch and channel, with m, v the mean and
    (unbiased) variance of the patch's values: log((v1 + e) / (v0 + e)) + (v0 + (m0 - m1)^2) / (v1 + e) - 1."""
    def patches(x):                                                    # (1, C, h, w) -> (P, patch, patch^2)
        x = x.unfold(1, patch, patch).unfold(2, patch, patch).unfold(3, patch, patch)
        return x.contiguous().view(-1, patch, patch * patch)          # channel-in-group, then the patch's pixels

    p0, p1 = patches(eps), patches(target)
    m0, m1, v0, v1 = p0.mean(-1), p1.mean(-1), p0.var(-1), p1.var(-1)
    e = 1e-6
    kl = torch.log((v1 + e) / (v0 + e)) + (v0 + (m0 - m1) ** 2) / (v1 + e) - 1
    return kl.abs().sum()


def auto_correlation(eps: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Sum over channels and pyramid levels of the squared mean of eps times eps rolled by a random shift
    r in [0, side / 2) (one draw per channel and level, the same r down and across), halving the map by
    average pooling until its side is 8 or less. eps: (1, C, h, w); a scalar."""
    loss = eps.new_zeros(())
    for c in range(eps.shape[1]):
        x = eps[:, c: c + 1]                                            # (1, 1, h, w)
        while True:
            r = int(torch.randint(0, x.shape[2] // 2, (1,), generator=generator))
            loss = loss + (x * torch.roll(x, r, 2)).mean() ** 2 + (x * torch.roll(x, r, 3)).mean() ** 2
            if x.shape[2] <= 8:
                break
            x = F.avg_pool2d(x, 2)
    return loss


def regularize(eps: torch.Tensor, target: torch.Tensor, generator: torch.Generator,
               cfg: NoiseRegularization = NoiseRegularization()) -> torch.Tensor:
    """The nudged noise estimate (1, C, h, w): `cfg.steps` rounds of one patch-KL gradient step (clipped at
    +-100) and `cfg.rolls` auto-correlation steps (each gradient divided by `cfg.rolls`)."""
    e = eps.detach()
    with torch.enable_grad():
        for _ in range(cfg.steps):
            if cfg.lambda_kl > 0:
                v = e.clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(patch_kl(v, target, cfg.patch), v)
                e = e - cfg.lambda_kl * grad.clamp(-100, 100)
            if cfg.lambda_ac > 0:
                for _ in range(cfg.rolls):
                    v = e.clone().requires_grad_(True)
                    (grad,) = torch.autograd.grad(auto_correlation(v, generator), v)
                    e = e - cfg.lambda_ac * grad / cfg.rolls
    return e.detach()


def check_shape(shape: tuple, patch: int = 4) -> None:
    """The patch KL needs channels and sides that are multiples of `patch` (SD's 4-channel latents are)."""
    c, h, w = shape
    if c % patch or h % patch or w % patch:
        raise ValueError(f"ReNoise's noise regularization works on latents whose channels and sides are multiples of "
                         f"{patch}; these are {c} x {h} x {w}: use method='renoise' (no regularization) instead")
