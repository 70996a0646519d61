"""What the attention recorder holds and costs at the real models' sizes: SD 2.1-base at 512 px and SDXL at
1024 px, per recorder mode, over 50 steps, and notebook 01's default mode against a plain generation.

    .venv/bin/python benchmarks/recorder_real_shapes.py     # about 8 minutes on 2 cores; writes results/recorder.json

1. Memory, exact, at the real layer counts: the real UNets (SD 2.1-base's and SDXL's published configs) built
   on the meta device (no weights, no arithmetic), called 50 times with meta latents at their native size under
   each recorder mode; the recorder's cache holds meta tensors whose byte counts are those a real run keeps
   (classifier-free guidance: batch 2). The same count on the tiny random pipelines of the same shapes is
   checked against a real run on the CPU.
2. Time: notebook 01's default (cross-attention every step, self-attention at the last step, float16,
   grids above 32x32 area-averaged) over a plain 50-step guided generation, on the tiny random SD 2.1- and
   SDXL-shaped pipelines (conceptlab.toy.tiny), medians of interleaved repeats, ratio within one run.
"""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

import conceptlab
from conceptlab import hooks
from conceptlab.toy import tiny

OUT = Path(__file__).parent / "results"
PROMPT = "a red circle and a blue square on grass"
STEPS = 50
SD21 = dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=1024,
            attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SDXL = dict(sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2, cross_attention_dim=2048,
            attention_head_dim=(5, 10, 20), use_linear_projection=True, transformer_layers_per_block=(1, 2, 10),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)
MODES = {   # name: [(recorder settings, kept every step?)]: a recorder that keeps entries per step grows linearly
    "everything (per head, per step)": [(dict(heads="all"), True)],
    "head mean, per step (the recorder's default)": [(dict(), True)],
    "head mean, conditional half": [(dict(half="cond"), True)],
    "head mean, cond half, running mean": [(dict(half="cond", running_mean=True), False)],
    "cross only, cond half, per step": [(dict(kind="cross", half="cond"), True)],
    "notebook 01's default": [(dict(kind="cross", half="cond", max_resolution=32, dtype=torch.float16), True),
                              (dict(kind="self", half="cond", max_resolution=32, dtype=torch.float16), False)],
}
NB01 = [dict(kind="cross", half="cond", max_resolution=32, dtype=torch.float16),
        dict(kind="self", half="cond", steps=[STEPS - 1], max_resolution=32, dtype=torch.float16)]


def record(unet, run, settings: list[dict], calls: int = 1) -> int:
    """Bytes the recorders hold after `calls` UNet calls made by run()."""
    recs = [hooks.AttentionRecorder(unet, **kw) for kw in settings]
    for r in recs:
        r.__enter__()
    try:
        for _ in range(calls):
            run()
    finally:
        for r in reversed(recs):
            r.__exit__(None, None, None)
    return sum(r.cache.nbytes() for r in recs)


def meta_unet(config: dict, tokens: int):
    """A UNet of this config on the meta device and run(): one guided call (batch 2) at its native size."""
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
        s = config["sample_size"]
        z, text = torch.empty(2, 4, s, s), torch.empty(2, tokens, config["cross_attention_dim"])
        added = None
        if config.get("addition_embed_type") == "text_time":
            pooled = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
            added = {"text_embeds": torch.empty(2, pooled), "time_ids": torch.empty(2, 6)}

    def run():
        with torch.no_grad():
            unet(z, torch.tensor(500), encoder_hidden_states=text, added_cond_kwargs=added)
    return unet, run


def meta_memory(config: dict, tokens: int = 77, steps: int = STEPS) -> dict:
    """Bytes each mode holds after `steps` guided steps: one call counted per recorder, times the steps for a
    recorder that keeps an entry per step (every step adds the same entries), once for one that does not."""
    unet, run = meta_unet(config, tokens)
    out = {name: sum(record(unet, run, [kw]) * (steps if grows else 1) for kw, grows in parts)
           for name, parts in MODES.items()}
    out["attention layers"] = len(hooks.attention_layers(unet))
    return out


def overhead(model, repeats: int) -> dict:
    plain, recorded = [], []
    model.generate(PROMPT, steps=2)
    for _ in range(repeats):
        t0 = time.perf_counter(); model.generate(PROMPT, steps=STEPS); plain.append(time.perf_counter() - t0)
        with hooks.AttentionRecorder(model, **NB01[0]), hooks.AttentionRecorder(model, **NB01[1]):
            t0 = time.perf_counter(); model.generate(PROMPT, steps=STEPS); recorded.append(time.perf_counter() - t0)
    p, r = statistics.median(plain), statistics.median(recorded)
    return dict(plain_s=p, recorded_s=r, ratio=r / p, repeats=repeats, steps=STEPS)


def tiny_check(model, steps: int = 3) -> dict:
    """Notebook 01's mode: the bytes a real 3-step guided generation leaves against the meta count."""
    settings = [NB01[0], {**NB01[1], "steps": [steps - 1]}]
    recs = [hooks.AttentionRecorder(model, **kw) for kw in settings]
    with recs[0], recs[1]:
        model.generate(PROMPT, steps=steps)
    real = sum(r.cache.nbytes() for r in recs)
    unet, run = meta_unet(dict(model.unet.config), model.tokenizer.model_max_length)
    meta = record(unet, run, [NB01[0]]) * steps + record(unet, run, [{**NB01[1], "steps": None}])
    return dict(real_bytes=real, meta_bytes=meta, equal=real == meta)


def main():
    torch.manual_seed(0)
    results = {"threads": torch.get_num_threads(), "steps": STEPS}
    results["memory_bytes"] = {"SD 2.1-base, 512 px": meta_memory(SD21), "SDXL, 1024 px": meta_memory(SDXL)}
    for shape, by in results["memory_bytes"].items():
        print(f"{shape} ({by['attention layers']} attention layers), {STEPS} guided steps:")
        for name in MODES:
            print(f"  {name:46s} {by[name] / 2**30:9.2f} GiB")
    folders = tiny.save_real_shapes(Path(tempfile.mkdtemp()), which=("sd21", "sdxl"))
    results["meta_count_checked"], results["overhead"] = {}, {}
    for name, repeats in (("sd21", 3), ("sdxl", 2)):
        model = conceptlab.load(folders[name])
        results["meta_count_checked"][name] = c = tiny_check(model)
        print(f"tiny {name}: recorder bytes in a real run {c['real_bytes']}, counted on meta {c['meta_bytes']}")
        results["overhead"][name] = o = overhead(model, repeats)
        print(f"tiny {name}: plain {o['plain_s']:.1f} s, notebook 01's recording {o['recorded_s']:.1f} s: ratio {o['ratio']:.2f}")
    OUT.mkdir(exist_ok=True)
    (OUT / "recorder.json").write_text(json.dumps(results, indent=2))
    print(f"written to {OUT / 'recorder.json'}")


if __name__ == "__main__":
    main()
