"""What batching buys on this CPU: one UNet call at batch B against B calls at batch 1, and a list of
16 scenes inverted (50 DDIM steps) in one batch against one at a time. Ratios within one run.

    .venv/bin/python benchmarks/batching.py          # about a minute; writes results/batching.json
"""
import json
import time
from pathlib import Path

import torch

import conceptlab
from conceptlab import inversion
from conceptlab.worlds import shapes


def per_call(model, batch: int, repeats: int = 20) -> float:
    """Seconds of one eps call at this batch size (the median of `repeats` after a warm-up)."""
    z = torch.randn(batch, *model.latent_shape, generator=torch.Generator().manual_seed(0))
    cond, t = model.encode_text("a red circle").repeat(batch), model.timesteps(50)[10]
    times = []
    with torch.no_grad():
        model.eps(z, t, cond)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.eps(z, t, cond)
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main():
    model = conceptlab.load("toy-shapes")
    one = per_call(model, 1)
    unet = {b: dict(seconds=per_call(model, b)) for b in (1, 2, 4, 8, 16, 32)}
    for b, r in unet.items():
        r["in_single_calls"] = r["seconds"] / one
        print(f"batch {b:2d}: {1000 * r['seconds']:6.1f} ms a call = {r['in_single_calls']:4.1f} single calls")
    scenes = shapes.scenes("heldout", 16)
    t0 = time.perf_counter()
    alone = [inversion.invert(model, s.image, s.caption, steps=50) for s in scenes]
    t_alone = time.perf_counter() - t0
    t0 = time.perf_counter()
    together = inversion.invert(model, [s.image for s in scenes], [s.caption for s in scenes], steps=50)
    t_list = time.perf_counter() - t0
    err = max(float((a.latents - b.latents).abs().max()) for a, b in zip(alone, together))
    print(f"16 scenes, 50 steps: one at a time {t_alone:.1f} s, as a list {t_list:.1f} s "
          f"({t_alone / t_list:.1f}x faster); largest latent difference {err:.1e}")
    out = dict(threads=torch.get_num_threads(), unet_call=unet,
               invert_16_scenes=dict(one_at_a_time_s=t_alone, list_s=t_list, speedup=t_alone / t_list, max_abs_diff=err))
    path = Path(__file__).parent / "results" / "batching.json"
    path.write_text(json.dumps(out, indent=1))
    print("written to", path)


if __name__ == "__main__":
    main()
