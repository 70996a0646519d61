"""ScalingConcept on toy-shapes, against the bars of the ScalingConcept issue.

    .venv/bin/python benchmarks/scaling_bench.py            # about 10 minutes on 2 cores

1. Removal at scale (paper Fig. 3 analog): held-out scenes, invert with the phrase of one object
   ("a red circle"), sample with "" (omega 0) and with the phrase (omega 1, the control); the oracle's
   removal rate, the control's keep rate, the clean-erase rate, and the same with the background named as
   the forward prompt (paper A.5).
2. Scaling is monotone: mean oracle presence on the weak-concept set per omega (clamped and signed).
3. Context survives: scale one object of a two-object scene up; is the other one kept, and the
   background PSNR, with and without noise regularization and early exit.
4. Cost: one edit over one plain 50-step guided generation; a 7-omega sweep in generations.
Writes benchmarks/results/scaling.json.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import conceptlab
from conceptlab import inversion, scaling
from conceptlab.worlds import oracle, shapes

OUT = Path(__file__).parent / "results"
STEPS = 50


def phrase(label: str) -> str:
    return f"a {label}"


def removal(model, n: int = 120) -> dict:
    """omega 0 and omega 1 from one inversion per scene (gamma 0, no regularization: the two plain branches
    of the paper's removal experiment), then again with the background as forward prompt."""
    scenes = shapes.scenes("heldout", n)
    rows = []
    for s in scenes:
        label, mask = s.labels[0], s.masks[0]
        inv = inversion.invert(model, s.image, phrase(label), steps=STEPS)
        removed, kept = scaling.sweep(model, inv, phrase(label), [0.0, 1.0], gamma=0, regularize=False, steps=STEPS)
        fwd = scaling.sweep(model, inv, phrase(label), [0.0], gamma=0, regularize=False, steps=STEPS,
                            forward_prompt=s.background)[0]
        rows.append(dict(removed=not oracle.is_present(removed, label), kept=oracle.is_present(kept, label),
                         clean=oracle.clean_erase(removed, mask), removed_fwd=not oracle.is_present(fwd, label),
                         clean_fwd=oracle.clean_erase(fwd, mask), objects=len(s.labels)))
    mean = lambda k, rs=rows: float(np.mean([r[k] for r in rs]))  # noqa: E731
    out = dict(scenes=n, removal_rate=mean("removed"), control_keep_rate=mean("kept"), clean_erase_rate=mean("clean"),
               forward_background=dict(removal_rate=mean("removed_fwd"), clean_erase_rate=mean("clean_fwd")))
    for k in (1, 2, 3):
        sub = [r for r in rows if r["objects"] == k]
        if sub:
            out[f"removal_rate_{k}_objects"] = dict(scenes=len(sub), rate=mean("removed", sub))
    return out


def monotone(model, n: int = 40, omegas=(-3, -1, 0, 0.5, 1, 2, 3, 4, 5)) -> dict:
    scenes = [shapes.weak_scene(i) for i in range(n)]
    out = {}
    for clamp in (True, False):
        pres = np.zeros((n, len(omegas)))
        for j, s in enumerate(scenes):
            label = s.labels[0]
            imgs = scaling.sweep(model, s.image, phrase(label), list(omegas), steps=STEPS, clamp=clamp)
            pres[j] = [oracle.presence(im, label) for im in imgs]
        out["clamped" if clamp else "signed"] = {str(o): float(p) for o, p in zip(omegas, pres.mean(0))}
    return out


def psnr_outside(a, b, masks) -> float:
    keep = ~np.any(np.stack(masks), 0)
    a = oracle.as_array(a)[keep]
    b = oracle.as_array(b)[keep]
    return float(10 * np.log10(255 ** 2 / np.mean((a - b) ** 2)))


def context(model, n: int = 40, omega: float = 5.0) -> dict:
    scenes = [s for s in shapes.scenes("heldout", 10 * n) if len(s.labels) == 2][:n]
    settings = {"no regularization": dict(regularize=False), "regularization, t_exit 15": dict(t_exit=15),
                "regularization to the end (t_exit 50)": dict(t_exit=STEPS)}
    out = {}
    for name, kw in settings.items():
        kept, psnrs = [], []
        for s in scenes:
            inv = inversion.invert(model, s.image, phrase(s.labels[0]), steps=STEPS)
            im = scaling.scale_concept(model, inv, phrase(s.labels[0]), omega=omega, steps=STEPS, **kw)[0]
            kept.append(oracle.is_present(im, s.labels[1]))
            psnrs.append(psnr_outside(im, s.image, s.masks))
        out[name] = dict(other_object_kept=float(np.mean(kept)), background_psnr=float(np.mean(psnrs)))
    out.update(scenes=n, omega=omega)
    return out


def cost(model, repeats: int = 5) -> dict:
    s = shapes.scene("heldout", 0)
    label = phrase(s.labels[0])
    gen, edit, sweep7 = [], [], []
    model.generate(label, steps=2)
    for _ in range(repeats):
        t0 = time.perf_counter(); model.generate(label, steps=STEPS, guidance=5.0); gen.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); scaling.scale_concept(model, s.image, label, steps=STEPS); edit.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); scaling.sweep(model, s.image, label, [-1, 0, 1, 2, 3, 4, 5], steps=STEPS)
        sweep7.append(time.perf_counter() - t0)
    g = statistics.median(gen)
    return dict(generation_s=g, edit_s=statistics.median(edit), edit_ratio=statistics.median(edit) / g,
                sweep7_s=statistics.median(sweep7), sweep7_in_generations=statistics.median(sweep7) / g,
                sweep7_bar=1 + 7 * 0.8, threads=torch.get_num_threads())


def main():
    model = conceptlab.load("toy-shapes")
    res = {}
    res["cost"] = c = cost(model)
    print(f"cost: generation {c['generation_s']:.2f} s; edit {c['edit_s']:.2f} s = {c['edit_ratio']:.2f}x (bar <= 2.2); "
          f"7-omega sweep {c['sweep7_s']:.2f} s = {c['sweep7_in_generations']:.2f} generations (bar <= {c['sweep7_bar']:.1f})")
    res["removal"] = r = removal(model)
    print(f"removal on {r['scenes']} held-out scenes: removed {r['removal_rate']:.1%} (bar >= 85%), control kept "
          f"{r['control_keep_rate']:.1%} (bar >= 95%), clean erase {r['clean_erase_rate']:.1%}; forward prompt = background: "
          f"removed {r['forward_background']['removal_rate']:.1%}, clean {r['forward_background']['clean_erase_rate']:.1%}")
    res["monotone"] = m = monotone(model)
    for mode, by in m.items():
        print(f"weak-concept presence per omega ({mode}): " + ", ".join(f"{o}: {p:.3f}" for o, p in by.items()))
    res["context"] = cx = context(model)
    for name, v in cx.items():
        if isinstance(v, dict):
            print(f"context, omega {cx['omega']}, {name}: other object kept {v['other_object_kept']:.0%}, "
                  f"background PSNR {v['background_psnr']:.1f} dB")
    OUT.mkdir(exist_ok=True)
    (OUT / "scaling.json").write_text(json.dumps(res, indent=2))
    print(f"written to {OUT / 'scaling.json'}")


if __name__ == "__main__":
    main()
