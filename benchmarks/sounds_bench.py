"""Sound highlighting and removal on toy-sounds, against the bars of the audio issue.

    .venv/bin/python benchmarks/sounds_bench.py                  # all parts
    .venv/bin/python benchmarks/sounds_bench.py --parts removal  # some parts; updates the results file

1. reconstruction: SNR against the input of (a) the vocoder alone (log-mel -> Griffin-Lim), (b) the VAE and
   the vocoder (encode -> decode), (c) DDIM inversion with the caption and sampling back (omega 1, gamma 0);
   and each source's oracle presence after each (phase is not recovered, so the SNR is poor; band energy is).
2. removal (paper Fig. 3, audio half): held-out mixtures of 2-3 sources; invert with one source's phrase
   (DDIM, and ReNoise as the paper), sample with "" (omega 0) and with the phrase (omega 1, the control).
   Bar: the target keeps <= 20% of its energy on >= 80% of mixtures, the control keeps >= 90%. Also with the
   other sources' caption as forward prompt (paper A.5) and with signed omega -1 .. -4 (paper Fig. 16).
3. highlight: the target's share of the energy per omega (the curve), and every other source's presence
   at the default omega 5 (bar: >= 70%); with the phrase against "" (the paper), with the whole caption
   against the other sources' caption (contrast), and with contrast but no noise regularization (t_exit 0).
Writes benchmarks/results/sounds.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import conceptlab
from conceptlab import audio, inversion, scaling, sound_edits
from conceptlab.worlds import sounds

import reproduced  # noqa: E402  (benchmarks/reproduced.py: the paper tables, run by conceptlab.reproduce)

OUT = Path(__file__).parent / "results"
STEPS = 50
OMEGAS = [0.0, 1.0, 2.0, 3.0, 5.0, 7.0]
DEFAULT_OMEGA = 5.0


def reconstruction(model, n: int = 20) -> dict:
    rows = []
    for mix in sounds.mixtures("heldout", n, start=1000):
        vocoded = audio.waveform(audio.log_mel(mix.waveform), length=sounds.LENGTH)[0]
        through_vae = model.decode(model.encode(mix.waveform))[0]
        inv = inversion.invert(model, mix.waveform, mix.caption, steps=STEPS)
        rebuilt = inversion.reconstruct(model, inv)[0]
        rows.append({name: dict(snr=audio.snr(mix.waveform, w), presence=float(np.mean(list(sound_edits.presences(w, mix).values()))))
                     for name, w in (("vocoder", vocoded), ("vae", through_vae), ("inversion", rebuilt))})
    return {name: dict(snr_db=float(np.mean([r[name]["snr"] for r in rows])),
                       snr_db_sd=float(np.std([r[name]["snr"] for r in rows])),
                       mean_presence=float(np.mean([r[name]["presence"] for r in rows])))
            for name in rows[0]} | dict(mixtures=n)


def multi_source(n: int, start: int) -> list[sounds.Mixture]:
    """The first n held-out mixtures from index `start` that have 2-3 sources."""
    out, i = [], start
    while len(out) < n:
        mix = sounds.mixture("heldout", i)
        i += 1
        if len(mix.sources) >= 2:
            out.append(mix)
    return out


REMOVAL_OMEGAS = [0.0, -1.0, -2.0, -3.0, -4.0]
CHUNK = 10                                      # mixtures inverted and sampled together, one batch a step


def removal(model, n: int = 100, methods=("ddim", "renoise")) -> dict:
    """Mixtures 0.. of the held-out split with 2-3 sources; the target is the first source. For each inversion
    method (DDIM, ReNoise), one inversion with the target's phrase, then sampling at omega 1 (the control)
    and at omega 0 / -1 / -2 / -3 / -4 (signed, clamp=False) with the forward prompt "" and with the other
    sources' caption (paper A.5): the `sound-removal` experiment of conceptlab.reproduce, one run per method and
    forward prompt (resumable; a method re-measured alone reuses the others' finished runs). A target is removed
    when its presence is <= 0.2, kept by the control when >= 0.9."""
    omegas = ",".join(f"{w:g}" for w in REMOVAL_OMEGAS)
    runs = {(m, fwd): reproduced.rows("sound-removal", model=model.name, n=n, steps=STEPS, inversion=m,
                                      omegas=omegas, forward=fwd)
            for m in methods for fwd in ("null", "others")}
    first = next(iter(runs.values()))
    rows = [dict(target=r["label"]) for r in first]
    for (m, fwd), rs in runs.items():
        for row, r in zip(rows, rs):
            for w, at in r["omegas"].items():
                row[f"{m} {fwd} {w}"] = dict(target=at["target"], others=at["others"])
            if fwd == "null":
                row[f"{m} control"] = dict(target=r["presence_control"], others=r["others_control"])
    settings = {}
    for key in rows[0]:
        if key == "target":
            continue
        target = np.array([r[key]["target"] for r in rows])
        others = np.array([r[key]["others"] for r in rows])
        if key.endswith("control"):
            settings[key] = dict(keep_rate=float(np.mean(target >= 0.9)), median_target=float(np.median(target)))
            continue
        per_kind = {k: float(np.mean([r[key]["target"] <= 0.2 for r in rows if r["target"] == k]))
                    for k in sounds.KINDS if any(r["target"] == k for r in rows)}
        settings[key] = dict(removal_rate=float(np.mean(target <= 0.2)), median_target=float(np.median(target)),
                             others_median_presence=float(np.median(others)), per_kind=per_kind)
    kinds = {k: sum(r["target"] == k for r in rows) for k in sounds.KINDS}
    return dict(mixtures=n, targets_per_kind=kinds, settings=settings, rows=rows)


def highlight_curve(model, mixes, invs, contrast: bool, t_exit: int = 15) -> list[dict]:
    """The curve of one setup over the mixtures, from their inversions `invs` (made with the setup's concept
    prompt); CHUNK mixtures sampled together, every omega in the same batch."""
    prompts = [sound_edits.highlight_prompts(mix, mix.kinds[0], contrast) for mix in mixes]
    rows = []
    for c in range(0, len(mixes), CHUNK):
        block = slice(c, c + CHUNK)
        waves = scaling.sweep(model, invs[block], [p[0] for p in prompts[block]], OMEGAS, gamma=3.0, t_exit=t_exit,
                              steps=STEPS, forward_prompt=[p[1] for p in prompts[block]])
        rows += [sound_edits.highlight_rows(mix, mix.kinds[0], OMEGAS, ws) for mix, ws in zip(mixes[block], waves)]
    curve = []
    for j, omega in enumerate(OMEGAS):
        at = [r[j] for r in rows]
        others = [p for row in at for k, p in row["presence"].items() if k != row["target"]]
        curve.append(dict(omega=omega, target_share=float(np.mean([row["share"] for row in at])),
                          target_presence=float(np.median([row["presence"][row["target"]] for row in at])),
                          others_median_presence=float(np.median(others)), others_min_presence=float(np.min(others)),
                          others_keep_rate=float(np.mean(np.array(others) >= 0.7))))
    return curve


def highlight(model, n: int = 40) -> dict:
    """Held-out mixtures with 2-3 sources (from index 500); the target is the first source. Three setups, all
    gamma 3: "curve", the paper's (the phrase against "", noise regularization until t_exit 15),
    "contrast_curve" (the whole caption against the other sources' caption, sound_edits.highlight(contrast=True)),
    and "contrast_noreg_curve" (the same without the memory-bank regularization, t_exit 0). Each mixture is
    DDIM-inverted twice, with the phrase and with the caption (the two contrast setups share it), CHUNK at a time."""
    mixes = multi_source(n, start=500)
    input_share = float(np.mean([sounds.share(mix.waveform, mix.kinds[0]) for mix in mixes]))
    invs = {}
    for contrast in (False, True):
        concepts = [sound_edits.highlight_prompts(mix, mix.kinds[0], contrast)[0] for mix in mixes]
        invs[contrast] = [inv for c in range(0, n, CHUNK) for inv in
                          inversion.invert(model, [mix.waveform for mix in mixes[c:c + CHUNK]], concepts[c:c + CHUNK],
                                           steps=STEPS, method="ddim")]
    return dict(mixtures=n, default_omega=DEFAULT_OMEGA, input_target_share=input_share,
                curve=highlight_curve(model, mixes, invs[False], False),
                contrast_curve=highlight_curve(model, mixes, invs[True], True),
                contrast_noreg_curve=highlight_curve(model, mixes, invs[True], True, t_exit=0))


PARTS = dict(reconstruction=reconstruction, removal=removal, highlight=highlight)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    p.add_argument("--model", default="toy-sounds")
    p.add_argument("--quick", action="store_true", help="a few mixtures per part (a smoke run, not the bars)")
    p.add_argument("--methods", nargs="+", choices=["ddim", "renoise"], default=["ddim", "renoise"],
                   help="removal: the inversions to measure (each one's finished runs are read back)")
    args = p.parse_args(argv)
    model = conceptlab.load(args.model)
    path = OUT / "sounds.json"
    results = json.loads(path.read_text()) if path.exists() and not args.quick else {}
    for part in args.parts:
        t0 = time.time()
        kwargs = {"n": 3} if args.quick else {}
        if part == "removal":
            kwargs.update(methods=args.methods)
        results[part] = PARTS[part](model, **kwargs)
        results[part]["seconds"] = round(time.time() - t0, 1)
        summary = {k: v for k, v in results[part].items() if k not in ("rows", "settings") and not k.endswith("curve")}
        print(part, json.dumps(summary, indent=1), flush=True)
        for key, row in results[part].get("settings", {}).items():
            print(f"  {key:22s}", {k: v for k, v in row.items() if k != "per_kind"}, row.get("per_kind", ""))
        if part == "highlight":
            for key in ("curve", "contrast_curve", "contrast_noreg_curve"):
                for row in results[part][key]:
                    print(key, row)
    if not args.quick:
        OUT.mkdir(exist_ok=True)
        path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
