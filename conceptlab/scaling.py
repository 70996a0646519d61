"""ScalingConcept (Huang et al. 2024): invert an input with a concept prompt c, then sample back while
scaling the difference between the concept branch and the null branch.

    edited = conceptlab.scale_concept(model, image, "red circle", omega=5)    # enhance
    removed = conceptlab.scale_concept(model, image, "red circle", omega=0)   # remove

Per sampling step i = 0..N-1 (noisiest first), with eps_null = eps(z_i, forward prompt, "" by default):
    w_i     = omega (1 - i/(N-1))^gamma                 the authors' code's reading of the paper's beta(t) =
                                                        (t/T)^gamma, t counting down (beta="paper": (t_i/T)^gamma)
    eps_hat = eps_null + w_i (eps_c - eps_null)         eq. 5, eps_c = eps(z_i, c)
and, while i < t_exit, the noise regularization with the inversion's memory bank (eqs. 6-7):
    z_ref   = (z_i + bank[N - i]) / 2,  eps_bar = eps(z_ref, c)
    eps_hat = eps_null + w_i (eps_c - eps_null) + w_i (eps_bar - eps_c) = eps_null + w_i (eps_bar - eps_null)
so eps_c is not computed during those steps. Each step's two evaluations go in one batched UNet forward,
and several omegas share one inversion, batched together (`sweep`); a list of inputs joins the same batch.
Every step reports to a hooks.TrajectoryRecorder as stage "scaled" with branches "null", and "concept" or
"regularized".
"""
from __future__ import annotations

import torch

from . import hooks
from .checks import as_int, as_list, as_number
from .ddim import check_steps, ddim_step, ddpm_step
from .inversion import Inversion, alpha_pairs, check_inversion, invert, one_each, step_noise
from .models import Condition, Model


BETAS = ("authors", "paper")


def weights(omega: float, gamma: float, steps: int, clamp: bool = True, timesteps: torch.Tensor | None = None,
            train_steps: int = 1000) -> torch.Tensor:
    """w_i = omega (1 - i/(N-1))^gamma for i = 0..N-1: (N,), the authors' code's schedule; with the sampling
    `timesteps` (N,) given, the paper's omega (t_i / T)^gamma instead (T = train_steps); the two differ most
    at the first step, where t_0 < T. gamma = 0 is constant (0^0 = 1).
    clamp=True clips at 0 as the authors' code does (any omega < 0 then acts as omega = 0)."""
    omega, gamma, _ = check_scale(omega, gamma)
    steps = check_steps(steps)
    if timesteps is not None:
        if len(timesteps) != steps:
            raise ValueError(f"got {len(timesteps)} timesteps for {steps} steps: give the run's own timesteps")
        frac = torch.as_tensor(timesteps, dtype=torch.float64).cpu() / train_steps
    else:
        frac = 1 - torch.arange(steps, dtype=torch.float64) / max(steps - 1, 1)
    w = omega * frac.pow(gamma)                         # torch: 0 ** 0 = 1
    return (w.clamp(min=0) if clamp else w).float()


def default_t_exit(steps: int) -> int:
    """The authors' early exit, 15 of 50 steps, in proportion: round(0.3 N)."""
    return round(0.3 * steps)


OMEGA_LIMIT = 1000.0          # beyond it the guided noise leaves float range: NaN pixels, not a stronger concept


def check_scale(omega: float, gamma: float, t_exit: int | None = None, steps: int | None = None) -> tuple:
    """Door checks of the scaling parameters, with what to do -> (omega, gamma, t_exit) as Python numbers."""
    omega = as_number(omega, "omega", "0 removes the concept, 1 reconstructs, 5 enhances", -OMEGA_LIMIT, OMEGA_LIMIT)
    gamma = as_number(gamma, "gamma", "0: constant weight, 3: the paper's default", 0.0, 100.0)
    if t_exit is not None:
        t_exit = as_int(t_exit, "t_exit", "the sampling steps with noise regularization; the paper's default is "
                        "15 of 50", 0, steps)
    return omega, gamma, t_exit


@torch.no_grad()
def scaled_sample(model: Model, inv: Inversion | list[Inversion], concept: str | list[str], omegas: list[float],
                  gamma: float = 3.0, t_exit: int | None = None, forward_prompt: str | list[str] = "", clamp: bool = True,
                  regularize: bool = True, beta: str = "authors") -> torch.Tensor:
    """Sample from the inversion's z_T once per omega, all omegas batched. Returns clean latents (K, C, h, w).
    A list of S inversions (same step count), with one concept (and forward prompt) for all or one each,
    puts every (inversion, omega) pair in the same batch: (S*K, C, h, w), inversion-major.
    regularize=False turns the memory-bank regularization off (t_exit is then ignored). t_exit=None: the authors'
    15 of 50 steps, in proportion to the step count (round(0.3 N)). beta: the weight schedule, "authors"
    (omega (1 - i/(N-1))^gamma, their code's) or "paper" (omega (t_i/T)^gamma, the paper's formula); see `weights`."""
    if beta not in BETAS:
        raise ValueError(f"beta must be 'authors' (their code's schedule) or 'paper' ((t/T)^gamma), got {beta!r}")
    omegas = as_list(omegas, "omegas", "numbers such as [0, 1, 3, 5]")
    invs = list(inv) if isinstance(inv, (list, tuple)) else [inv]
    if not invs:
        raise ValueError("scaled_sample got an empty list of inversions")
    concepts, forwards = one_each(concept, len(invs), "concepts"), one_each(forward_prompt, len(invs), "forward prompts")
    for c, fp in zip(concepts, forwards):
        model.check_prompt(c)
        model.check_prompt(fp, allow_empty=True)
    steps = invs[0].steps
    for one, c in zip(invs, concepts):
        check_inversion(model, one, steps)
        if one.prompt != c:                  # the method inverts with c and scales that same c
            raise ValueError(f"this inversion was made with the prompt {one.prompt!r} but the concept to scale is "
                             f"{c!r}: scale {one.prompt!r}, or invert again with {c!r} (to sample with another "
                             "prompt in the null branch, pass forward_prompt=...)")
    t_exit = default_t_exit(steps) if t_exit is None else t_exit
    gamma = check_scale(1.0, gamma)[1]
    omegas = [check_scale(omega, gamma, t_exit if regularize else None, steps)[0] for omega in omegas]
    k, n = len(omegas), len(invs)
    at = invs[0].timesteps if beta == "paper" else None
    w = torch.stack([weights(o, gamma, steps, clamp, at, len(model.alphas_cumprod)) for o in omegas])
    w = w.repeat(n, 1).to(model.device)                                                              # (S*K, N)
    c = Condition.cat([model.encode_text(one).repeat(k) for one in concepts])
    null = Condition.cat([(model.null() if fp == "" else model.encode_text(fp)).repeat(k) for fp in forwards])
    both = Condition.cat([null, c])                                  # batch [null x S*K, concept x S*K]
    timesteps = invs[0].timesteps
    z = torch.cat([one.z_T.to(model.device).repeat(k, 1, 1, 1) for one in invs])
    exit_at = t_exit if regularize else 0
    with hooks.own_loop():
        for i, ((abar_t, abar_s), t) in enumerate(zip(alpha_pairs(model, timesteps), timesteps)):
            wi = w[:, i].view(n * k, 1, 1, 1).to(z.dtype)
            if i < exit_at:                                          # eqs. 6-7: eps_c is not needed
                bank = torch.cat([one.at_step(i).to(z).expand(k, -1, -1, -1) for one in invs])   # bank[N - i]
                z_ref = (z + bank) / 2
                e_null, e_bar = model.eps(torch.cat([z, z_ref]), t, both).chunk(2)
                eps = e_null + wi * (e_bar - e_null)
                branches = {"null": e_null, "regularized": e_bar}
            else:                                                    # eq. 5
                e_null, e_c = model.eps(torch.cat([z, z]), t, both).chunk(2)
                eps = e_null + wi * (e_c - e_null)
                branches = {"null": e_null, "concept": e_c}
            hooks.report(i, t, z, eps, branches, stage="scaled")
            noise = step_noise(invs, i, k)                           # edit-friendly inversions: their noise maps
            z = ddim_step(z, eps, abar_t, abar_s) if noise is None else ddpm_step(z, eps, abar_t, abar_s, noise)
    return z


AUTHORS = dict(method="renoise-authors", seed=7865, gamma=3.0, t_exit=None, clamp=True, regularize=True, beta="authors")
"""scale_concept(model, x, concept, omega, **AUTHORS): ScalingConcept's demo (demo.py @e201f3a): ReNoise with
its noise regularization, averaging and a sampled z_0 (inversion method "renoise-authors", one renoise step,
the demo's seed), gamma 3, early exit after 15 of 50 steps, weights clamped at 0. The sampler is theirs
already (tests/test_scaling.py); our default inverts with plain DDIM from the posterior mean instead."""


def _inversion_of(model: Model, x_or_inversion, concept: str, steps: int, method: str, seed: int = 0) -> Inversion:
    if isinstance(x_or_inversion, Inversion):
        check_inversion(model, x_or_inversion, steps)
        return x_or_inversion
    return invert(model, x_or_inversion, concept, steps=steps, method=method, seed=seed)


def scale_concept(model: Model, x_or_inversion, concept: str, omega: float = 5.0, gamma: float = 3.0,
                  t_exit: int | None = None, steps: int = 50, forward_prompt: str = "", clamp: bool = True,
                  regularize: bool = True, method: str = "ddim", seed: int = 0, beta: str = "authors") -> torch.Tensor:
    """Scale `concept` in an input (PIL, uint8 array, tensor in [-1, 1]) or in an existing Inversion.
    The input is inverted with the concept prompt itself (unguided), as in the paper. omega > 1 enhances,
    0 <= omega < 1 removes, omega = 1 with gamma = 0 (and no regularization) reconstructs.
    method, seed: the inversion's (see `conceptlab.invert`; the seed matters to "ddpm" and "renoise-authors").
    beta: the weight schedule (see `scaled_sample`). `**AUTHORS` runs the authors' demo.
    Returns the edited image tensor (1, 3, H, W) in [-1, 1]."""
    omega, gamma, _ = check_scale(omega, gamma, t_exit if regularize else None, check_steps(steps))
    inv = _inversion_of(model, x_or_inversion, concept, steps, method, seed)
    return model.decode(scaled_sample(model, inv, concept, [omega], gamma, t_exit, forward_prompt, clamp, regularize,
                                      beta))


def sweep(model: Model, x_or_inversion, concept: str | list[str], omegas: list[float], gamma: float = 3.0,
          t_exit: int | None = None, steps: int = 50, forward_prompt: str | list[str] = "", clamp: bool = True,
          regularize: bool = True, method: str = "ddim", seed: int = 0, beta: str = "authors"):
    """One inversion, every omega sampled in one batch: images (K, 3, H, W) in [-1, 1], in the order given.
    A list of inputs (images or Inversions) with one concept for all or one each: all inputs and omegas
    in one batch, returned as a list of (K, 3, H, W), one per input (images are inverted in one batch too).
    method, seed: the inversion's, as in `scale_concept`; beta: see `scaled_sample`."""
    if not isinstance(x_or_inversion, (list, tuple)):
        inv = _inversion_of(model, x_or_inversion, concept, steps, method, seed)
        omegas = as_list(omegas, "omegas", "numbers such as [0, 1, 3, 5]")
        return model.decode(scaled_sample(model, inv, concept, omegas, gamma, t_exit, forward_prompt, clamp, regularize,
                                          beta))
    items = list(x_or_inversion)
    if not items:
        raise ValueError("sweep got an empty list of inputs")
    omegas = as_list(omegas, "omegas", "numbers such as [0, 1, 3, 5]")
    concepts, invs = one_each(concept, len(items), "concepts"), list(items)
    for x in items:
        if isinstance(x, Inversion):
            check_inversion(model, x, steps)
    todo = [j for j, x in enumerate(items) if not isinstance(x, Inversion)]
    if todo:                                                         # the images: inverted in one batch
        for j, one in zip(todo, invert(model, [items[j] for j in todo], [concepts[j] for j in todo], steps=steps,
                                       method=method, seed=seed)):
            invs[j] = one
    images = model.decode(scaled_sample(model, invs, concepts, omegas, gamma, t_exit, forward_prompt, clamp, regularize,
                                        beta))
    return list(images.split(len(omegas)))
