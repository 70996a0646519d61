"""What the hooks cost and what they show, against the bars of the hooks issue.

    .venv/bin/python benchmarks/hooks_cost.py            # about 6 minutes on 2 cores

1. Time: a 50-step guided generation while recording head-mean self- and cross-attention at every layer,
   over the same generation without hooks (ratio within one run, medians of interleaved repeats), on
   toy-shapes and on a tiny random UNet shaped like SD 2.1 (32x32 latents, linear projections).
2. Memory the recorder retains, per mode, after 10 and after 50 steps.
3. The object word's cross-attention: on 50 held-out one-object scenes, the share of the shape word's
   (and colour word's) cross-attention at the 16x16 layers that falls inside the object's mask.
Writes benchmarks/results/hooks.json.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import conceptlab
from conceptlab import hooks, metrics
from conceptlab.models import Model
from conceptlab.toy import tiny
from conceptlab.worlds import shapes

OUT = Path(__file__).parent / "results"


def overhead(model, prompt: str, repeats: int = 7, steps: int = 50) -> dict:
    """Median seconds of a plain and a recorded generation, interleaved so drift hits both alike."""
    plain, recorded = [], []
    model.generate(prompt, steps=2)                                   # warm-up
    for _ in range(repeats):
        t0 = time.perf_counter(); model.generate(prompt, steps=steps); plain.append(time.perf_counter() - t0)
        with hooks.AttentionRecorder(model) as rec:
            t0 = time.perf_counter(); model.generate(prompt, steps=steps); recorded.append(time.perf_counter() - t0)
        del rec
    p, r = statistics.median(plain), statistics.median(recorded)
    return dict(plain_s=p, recorded_s=r, ratio=r / p, repeats=repeats, steps=steps,
                layers=len(hooks.attention_layers(model.unet)))


def memory(model, prompt: str) -> dict:
    modes = {
        "everything (per head, per step)": dict(heads="all"),
        "head mean, per step (default)": dict(),
        "head mean, conditional half": dict(half="cond"),
        "head mean, running mean over steps": dict(running_mean=True),
        "head mean, cond half, 8x8, running mean": dict(half="cond", resolution=8, running_mean=True),
    }
    out = {}
    for name, kw in modes.items():
        out[name] = {}
        for steps in (10, 50):
            with hooks.AttentionRecorder(model, **kw) as rec:
                model.generate(prompt, steps=steps)
            out[name][steps] = rec.cache.nbytes()
    return out


def attention_in_mask(model, n: int = 50, steps: int = 50, world: shapes.World = shapes.WORLD) -> dict:
    scenes = [s for s in world.scenes("heldout", 20 * n) if len(s.labels) == 1][:n]
    shares = {"shape": [], "colour": []}
    area = []
    for s in scenes:
        colour, shape = s.labels[0].split()
        got = metrics.word_attention_in_masks(model, s, steps=steps)
        shares["shape"].append(got[f"{s.labels[0]}/{shape}"])
        shares["colour"].append(got[f"{s.labels[0]}/{colour}"])
        area.append(float(s.masks[0].mean()))
    res = {w: dict(mean_share=float(np.mean(v)), holds=float(np.mean(np.array(v) > 0.5))) for w, v in shares.items()}
    res.update(scenes=len(scenes), steps=steps, mean_mask_area=float(np.mean(area)))
    return res


def main():
    torch.manual_seed(0)
    toy = conceptlab.load("toy-shapes")
    sd21 = Model(tiny.sd2(sample_size=32), "tiny-sd2.1-shaped")
    sd21.pipe.set_progress_bar_config(disable=True)
    prompt = "a red circle and a blue square on grass"
    results = {"threads": torch.get_num_threads()}
    results["overhead"] = {"toy-shapes": overhead(toy, prompt), "tiny SD-2.1-shaped": overhead(sd21, prompt, repeats=3)}
    for name, r in results["overhead"].items():
        print(f"{name:20s} plain {r['plain_s']:.2f} s, recording {r['layers']} layers {r['recorded_s']:.2f} s: "
              f"ratio {r['ratio']:.2f} (bar <= 1.3)")
    results["memory_bytes"] = memory(toy, prompt)
    print("\nmemory retained by the recorder on toy-shapes (50-step guided generation):")
    for name, by in results["memory_bytes"].items():
        print(f"  {name:42s} 10 steps {by[10] / 2**20:8.2f} MiB   50 steps {by[50] / 2**20:8.2f} MiB")
    results["attention_in_mask"] = a = attention_in_mask(toy)
    print(f"\nobject word's cross-attention inside its mask (16x16 layers, {a['scenes']} held-out one-object scenes, "
          f"mean mask area {a['mean_mask_area']:.3f}):")
    for w in ("shape", "colour"):
        print(f"  {w:6s} word: mean share {a[w]['mean_share']:.3f}, share > 0.5 in {a[w]['holds']:.0%} of scenes (bar >= 80%)")
    OUT.mkdir(exist_ok=True)
    (OUT / "hooks.json").write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {OUT / 'hooks.json'}")


if __name__ == "__main__":
    main()
