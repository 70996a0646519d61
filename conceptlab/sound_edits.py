"""Measuring sound highlighting and removal with the sounds world's oracle (worlds/sounds.py).

The audio half of ScalingConcept (Fig. 3 and the highlighting examples): invert a mixture with one source's
phrase ("a siren"), then sample with omega = 0 (the null prompt alone: the source should go) or omega > 1
(the source should grow while the others stay). Every number is the oracle's: band energy of each source in
the edited waveform over its energy in the clean source, so 1 means "all of it is there".

    row = sound_edits.removal(model, mix, "siren")            # presence of the siren at omega 0 and 1, ...
    rows = sound_edits.highlight(model, mix, "siren", [1, 3, 5])
"""
from __future__ import annotations

import numpy as np

from . import inversion, scaling
from .models import Model
from .worlds import sounds


def presences(wave, mix: sounds.Mixture) -> dict[str, float]:
    """{kind: presence} of every source of the mixture in a waveform (T,)."""
    w = np.asarray(wave, np.float32).reshape(-1)
    return {k: sounds.presence(w, mix, k) for k in mix.kinds}


def _check(model: Model, mix: sounds.Mixture, kind: str):
    if not model.is_audio:
        raise ValueError(f"{model.name} is an image model: load a sound model, e.g. conceptlab.load('toy-sounds')")
    if kind not in mix.kinds:
        raise ValueError(f"the mixture has no {kind!r}; it has {mix.kinds}")


def _inversion(model: Model, mix: sounds.Mixture, prompt: str, steps: int, method: str,
               inv: inversion.Inversion | None) -> inversion.Inversion:
    """The inversion of the mixture with `prompt`: `inv` when given (checked), else a new one."""
    if inv is None:
        return inversion.invert(model, mix.waveform, prompt, steps=steps, method=method)
    inversion.check_inversion(model, inv, steps)
    if inv.prompt != prompt or inv.method != method:
        raise ValueError(f"this inversion was made with {inv.prompt!r} by {inv.method}; this edit needs {prompt!r} "
                         f"by {method}: pass the 'inversion' of a row made with the same prompt and method")
    return inv


def removal(model: Model, mix: sounds.Mixture, kind: str, steps: int = 50, forward_prompt: str = "",
            omega: float = 0.0, method: str = "renoise", inv: inversion.Inversion | None = None) -> dict:
    """Invert with the source's phrase (ReNoise by default, as the paper; "ddim" for plain DDIM inversion),
    then sample from that one inversion twice, gamma 0 without regularization: at `omega` (0: the null branch
    alone, the paper's removal; below 0 pushes away from the phrase, the signed mode of the paper's Fig. 16)
    and at omega 1 (the same-prompt reconstruction control).
    forward_prompt: what the null branch says (e.g. the other sources' caption, paper A.5; "" as in Fig. 3).
    How often each setting removes the target on toy-sounds, and what it does to the other sources:
    benchmarks/sounds_bench.py (results/sounds.json) and the README.
    inv: the Inversion of an earlier call's row (row["inversion"]) to sample other settings from, with no
    second inversion. Made with another phrase, method, step count or model, it is refused; that it is
    this mixture's is yours to keep (an Inversion does not record its input).
    Returns {"removed": {kind: presence} at omega, "control": {kind: presence} at omega 1, "target": kind,
    "waves": {"removed": (T,), "control": (T,)} the two waveforms, "inversion": the Inversion used}."""
    _check(model, mix, kind)
    scaling.check_scale(omega, 0.0)
    if omega >= 1:
        raise ValueError(f"removal scales the source down: omega must be below 1 (0 removes), got {omega!r}")
    phrase = sounds.KINDS[kind][0]
    inv = _inversion(model, mix, phrase, steps, method, inv)
    removed, control = scaling.sweep(model, inv, phrase, [omega, 1.0], gamma=0, regularize=False, steps=steps,
                                     forward_prompt=forward_prompt, clamp=False)
    return dict(target=kind, removed=presences(removed, mix), control=presences(control, mix),
                waves=dict(removed=removed, control=control), inversion=inv)


def highlight_prompts(mix: sounds.Mixture, kind: str, contrast: bool) -> tuple[str, str]:
    """(concept prompt, forward prompt) of `highlight`: (the source's phrase, "") or, with contrast, (the
    mixture's caption, the other sources' caption)."""
    others = [k for k in mix.kinds if k != kind]
    if contrast and not others:
        raise ValueError(f"contrast=True needs other sources to contrast with; the mixture has only {kind!r}")
    return (mix.caption, sounds.caption_for(others)) if contrast else (sounds.KINDS[kind][0], "")


def highlight_rows(mix: sounds.Mixture, kind: str, omegas: list[float], waves) -> list[dict]:
    """One row per omega of the edited waveforms (K, T): the target's share of the five bands' energy,
    every source's presence, and the waveform "wave" (T,)."""
    return [dict(omega=float(o), target=kind, share=sounds.share(w.numpy(), kind), presence=presences(w, mix), wave=w)
            for o, w in zip(omegas, waves)]


def highlight(model: Model, mix: sounds.Mixture, kind: str, omegas: list[float], steps: int = 50,
              gamma: float = 3.0, t_exit: int | None = None, method: str = "ddim", contrast: bool = False,
              inv: inversion.Inversion | None = None) -> list[dict]:
    """Scale one source up: one inversion, every omega in one batch (the paper's defaults: gamma 3, noise
    regularization until step 15). Returns one row per omega with the target's share of the five bands'
    energy, every source's presence, the edited waveform "wave" (T,) and the "inversion" used.
    contrast=False: the concept prompt is the source's phrase and the null branch says "" (the paper's setup).
    contrast=True: the concept prompt is the mixture's whole caption and the null branch says the other
    sources' caption (the paper's A.5 lever, a concept present in place of ""), so eps_c - eps_null is what
    the target's phrase adds to the rest; on toy-sounds this keeps the other sources at large omega.
    inv: an earlier row's "inversion" (same prompt, method, steps and model; checked) to sample other
    settings (t_exit, gamma, omegas) from with no second inversion; that it is this mixture's is yours to keep.
    What contrast, t_exit and the inversion method do to the target's share and to the other sources on
    toy-sounds is measured by benchmarks/sounds_bench.py (results/sounds.json) and reported in the README. The
    inversion is DDIM by default here (method="renoise" for the paper's)."""
    _check(model, mix, kind)
    concept, forward = highlight_prompts(mix, kind, contrast)
    inv = _inversion(model, mix, concept, steps, method, inv)
    waves = scaling.sweep(model, inv, concept, list(omegas), gamma=gamma, t_exit=t_exit, steps=steps,
                          forward_prompt=forward)
    return [dict(row, inversion=inv) for row in highlight_rows(mix, kind, omegas, waves)]
