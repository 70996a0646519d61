"""ScalingConcept on toy-shapes, against the bars of the ScalingConcept issue.

    .venv/bin/python benchmarks/scaling_bench.py            # about 35 minutes on 2 cores

1. Removal at scale (paper Fig. 3 analog): held-out scenes, invert with the phrase of one object
   ("a red circle"), sample with "" (omega 0) and with the phrase (omega 1, the control); the oracle's
   removal rate, the control's keep rate, the clean-erase rate, and the same with the background named as
   the forward prompt (paper A.5).
2. Scaling is monotone: mean oracle presence on the weak-concept set per omega (clamped and signed).
3. Context survives: scale one object of a two-object scene up; is the other one kept, and the
   background PSNR, with and without noise regularization and early exit.
4. Cost: one edit over one plain 50-step guided generation; a 7-omega sweep in generations.
5. Table 2 analog: gamma / noise regularization / early exit on the weak-concept set (toy-clip score, PSNR,
   SSIM, FID in toy-clip feature space against clean held-out scenes), and LEDITS++ adding the concept
   (Table 1 analog).
Writes benchmarks/results/scaling.json. `--parts table2 context` runs some parts and updates the file.
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

import reproduced  # noqa: E402  (benchmarks/reproduced.py: the paper tables, run by conceptlab.reproduce)

OUT = Path(__file__).parent / "results"
STEPS = 50


def phrase(label: str) -> str:
    return f"a {label}"


def removal(model=None, n: int = 120) -> dict:
    """omega 0 and omega 1 from one inversion per scene (gamma 0, no regularization: the two plain branches
    of the paper's removal experiment), then again with the background as forward prompt: the `removal`
    experiment of conceptlab.reproduce (`python -m conceptlab.reproduce removal --n 120`), summarized."""
    rows = reproduced.rows("removal", n=n, steps=STEPS)
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


CONTEXT_SETTINGS = {"no regularization": dict(regularize=False), "regularization, t_exit 15": dict(t_exit=15),
                    "regularization to the end (t_exit 50)": dict(t_exit=STEPS)}


def context(model, n: int = 40, omegas=(1.0, 2.0, 3.0, 5.0)) -> dict:
    """Two-object scenes, the first object's phrase scaled up: is the unnamed second object kept (oracle),
    how present is the named one, and the PSNR outside both objects, per omega and setting."""
    scenes = [s for s in shapes.scenes("heldout", 10 * n) if len(s.labels) == 2][:n]
    invs = [inversion.invert(model, s.image, phrase(s.labels[0]), steps=STEPS) for s in scenes]
    out = {}
    for omega in omegas:
        for name, kw in CONTEXT_SETTINGS.items():
            kept, named, psnrs = [], [], []
            for s, inv in zip(scenes, invs):
                im = scaling.scale_concept(model, inv, phrase(s.labels[0]), omega=omega, steps=STEPS, **kw)[0]
                kept.append(oracle.is_present(im, s.labels[1]))
                named.append(oracle.presence(im, s.labels[0]))
                psnrs.append(psnr_outside(im, s.image, s.masks))
            out[f"omega {omega:g}, {name}"] = dict(omega=omega, setting=name, other_object_kept=float(np.mean(kept)),
                                                   named_presence=float(np.mean(named)), background_psnr=float(np.mean(psnrs)))
    out["scenes"] = n
    return out


def table2(model=None, n: int = 32, reference: int = 400, omega: float = 5.0) -> dict:
    """Every Table 2 setting at omega 5 on n weak-concept scenes, one inversion per scene; LEDITS++ adding the
    concept; the input itself as the first row: the `weakconcept10` experiment of conceptlab.reproduce
    (`python -m conceptlab.reproduce weakconcept10 --limit 32`), summarized. FID in toy-clip's (unit-norm)
    image-feature space against `reference` clean held-out scenes: its scale is not Inception's, compare rows,
    not with the paper."""
    table = reproduced.table("weakconcept10", limit=n, reference=reference, omega=omega, steps=STEPS)
    rows = {name: {k: v for k, v in line.items() if k != "items"} for name, line in table.items()}
    rows["input"].update(psnr=float("inf"), ssim=1.0)
    return dict(scenes=n, reference=reference, omega=omega, rows=rows)


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


def main(parts=("cost", "removal", "monotone", "context", "table2")):
    model = conceptlab.load("toy-shapes")
    path = OUT / "scaling.json"
    res = json.loads(path.read_text()) if path.exists() else {}
    if "cost" in parts:
        res["cost"] = cost(model)
        report_cost(res["cost"])
    if "removal" in parts:
        res["removal"] = removal(model)
        report_removal(res["removal"])
    if "monotone" in parts:
        res["monotone"] = m = monotone(model)
        for mode, by in m.items():
            print(f"weak-concept presence per omega ({mode}): " + ", ".join(f"{o}: {p:.3f}" for o, p in by.items()))
    if "context" in parts:
        res["context"] = cx = context(model)
        for v in cx.values():
            if isinstance(v, dict):
                print(f"context, omega {v['omega']:g}, {v['setting']}: other object kept {v['other_object_kept']:.0%}, "
                      f"named presence {v['named_presence']:.2f}, background PSNR {v['background_psnr']:.1f} dB")
    if "table2" in parts:
        res["table2"] = t = table2(model)
        print(f"Table 2 analog, {t['scenes']} weak scenes, omega {t['omega']:g}:")
        for name, r in t["rows"].items():
            print(f"  {name:36s} FID {r['fid']:.3f}  clip {r['clip']:.1f}  PSNR {r['psnr']:.1f}  SSIM {r['ssim']:.3f}  presence {r['presence']:.2f}")
    OUT.mkdir(exist_ok=True)
    path.write_text(json.dumps(res, indent=2))
    print(f"written to {path}")


def report_cost(c):
    print(f"cost: generation {c['generation_s']:.2f} s; edit {c['edit_s']:.2f} s = {c['edit_ratio']:.2f}x (bar <= 2.2); "
          f"7-omega sweep {c['sweep7_s']:.2f} s = {c['sweep7_in_generations']:.2f} generations (bar <= {c['sweep7_bar']:.1f})")


def report_removal(r):
    print(f"removal on {r['scenes']} held-out scenes: removed {r['removal_rate']:.1%} (bar >= 85%), control kept "
          f"{r['control_keep_rate']:.1%} (bar >= 95%), clean erase {r['clean_erase_rate']:.1%}; forward prompt = background: "
          f"removed {r['forward_background']['removal_rate']:.1%}, clean {r['forward_background']['clean_erase_rate']:.1%}")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", default=["cost", "removal", "monotone", "context", "table2"],
                    choices=["cost", "removal", "monotone", "context", "table2"])
    main(ap.parse_args().parts)
