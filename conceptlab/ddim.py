"""The step math of DDIM, in one leaf module that models, hooks, inversion and the methods all import.

Notation (Song et al. 2021; Salimans & Ho 2022 for v): abar_t = prod_{s<=t} (1 - beta_s), and a noisy
latent is z_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps. A UNet predicts one of
    eps                                   ("epsilon": SD 1.x, SD 2.x-base, SDXL, AudioLDM 2, the toy models)
    v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0    ("v_prediction": SD 2.x at 768 px, many fine-tunes)
conceptlab's methods are written in eps; `eps_from_v` turns a v-prediction into the same eps, exactly
(both are linear in the network output, so guidance mixes them the same way).

Every function here takes and returns tensors of the latent's shape (B, C, h, w); alpha-bars are floats or
0-d / (B, 1, 1, 1) tensors. Nothing here imports from the rest of conceptlab.
"""
from __future__ import annotations

import torch

PREDICTION_TYPES = ("epsilon", "v_prediction")


def _abar(abar, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(abar, dtype=like.dtype, device=like.device)


def predict_x0(z: torch.Tensor, eps: torch.Tensor, abar) -> torch.Tensor:
    """x0 = (z_t - sqrt(1 - abar_t) eps) / sqrt(abar_t): the "predicted x0" of DDIM (eq. 12)."""
    abar = _abar(abar, z)
    return (z - (1 - abar).sqrt() * eps) / abar.sqrt()


def eps_from_v(z: torch.Tensor, v: torch.Tensor, abar) -> torch.Tensor:
    """eps = sqrt(abar_t) v + sqrt(1 - abar_t) z_t: the noise a v-prediction stands for."""
    abar = _abar(abar, z)
    return abar.sqrt() * v + (1 - abar).sqrt() * z


def as_eps(output: torch.Tensor, z: torch.Tensor, t, alphas_cumprod: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """A UNet's output at z_t as the noise it stands for: itself for "epsilon", eps_from_v for "v_prediction".
    t: a timestep (int or 0-d) or one per latent (B,)."""
    if prediction_type == "epsilon":
        return output
    if prediction_type != "v_prediction":
        raise ValueError(f"unknown prediction_type {prediction_type!r}; expected one of {PREDICTION_TYPES}")
    abar = alphas_cumprod[torch.as_tensor(t).long().flatten().cpu()].to(z.device)
    return eps_from_v(z, output, abar.view(-1, 1, 1, 1) if abar.numel() > 1 else abar[0])


def v_target(x0: torch.Tensor, eps: torch.Tensor, abar) -> torch.Tensor:
    """v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0: the training target of a v-prediction model."""
    abar = _abar(abar, x0)
    return abar.sqrt() * eps - (1 - abar).sqrt() * x0


def add_noise(x0: torch.Tensor, eps: torch.Tensor, abar) -> torch.Tensor:
    """z_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (the forward process, DDPM eq. 4)."""
    abar = _abar(abar, x0)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * eps


def ddim_step(z: torch.Tensor, eps: torch.Tensor, abar_from: float, abar_to: float) -> torch.Tensor:
    """One deterministic DDIM move of z from noise level abar_from to abar_to (eq. 12, eta 0). Sampling goes
    to a larger abar (cleaner); inversion (ScalingConcept eq. 3) to a smaller one (noisier)."""
    x0 = predict_x0(z, eps, abar_from)
    return abar_to ** 0.5 * x0 + (1 - abar_to) ** 0.5 * eps


def ddpm_sigma(abar_t: float, abar_s: float) -> float:
    """The noise scale of a stochastic DDPM step from abar_t to the cleaner abar_s (DDIM's eta = 1):
    sigma = sqrt((1 - abar_s) / (1 - abar_t) * (1 - abar_t / abar_s))."""
    return max(0.0, (1 - abar_s) / (1 - abar_t) * (1 - abar_t / abar_s)) ** 0.5


def ddpm_mean(z: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_s: float) -> torch.Tensor:
    """The mean of that step: sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps."""
    sigma = ddpm_sigma(abar_t, abar_s)
    return abar_s ** 0.5 * predict_x0(z, eps, abar_t) + max(0.0, 1 - abar_s - sigma ** 2) ** 0.5 * eps


def ddpm_step(z: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_s: float, noise: torch.Tensor) -> torch.Tensor:
    """One stochastic DDPM step with a given noise map: z_s = mean + sigma * noise (edit-friendly sampling)."""
    return ddpm_mean(z, eps, abar_t, abar_s) + ddpm_sigma(abar_t, abar_s) * noise


def ddpm_noise(z: torch.Tensor, z_s: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_s: float) -> torch.Tensor:
    """The noise map that makes ddpm_step land exactly on z_s (Huberman-Spiegelglas et al. 2024, eq. 5);
    zero where the step adds no noise."""
    sigma = ddpm_sigma(abar_t, abar_s)
    return (z_s - ddpm_mean(z, eps, abar_t, abar_s)) / sigma if sigma > 0 else torch.zeros_like(z)


def alpha_pairs(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, final_alpha: float) -> list[tuple[float, float]]:
    """For each sampling step i, (abar at t_i, abar at the next cleaner timestep); the cleanest step goes to
    `final_alpha` (the scheduler's final_alpha_cumprod: abar_0 when set_alpha_to_one is False, as in SD)."""
    nxt = [float(alphas_cumprod[t]) for t in timesteps[1:]] + [float(final_alpha)]
    return [(float(alphas_cumprod[t]), a) for t, a in zip(timesteps, nxt)]


def check_steps(steps) -> int:
    """A step count: an integer from 1 to 1000 (numpy integers too)."""
    import numbers

    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or not 1 <= int(steps) <= 1000:
        raise ValueError(f"steps must be an integer from 1 to 1000, got {steps!r}")
    return int(steps)
