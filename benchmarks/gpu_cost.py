"""What each notebook needs on a GPU with a real checkpoint: measured call counts times a stated per-call cost.

    .venv/bin/python benchmarks/gpu_cost.py --count   # run every notebook, counting calls (about 10 minutes)
    .venv/bin/python benchmarks/gpu_cost.py           # the report from the counts: results/gpu_cost.json

1. Counts, measured. Every notebook runs at its own default parameters (only MODEL and the judges injected,
   as a teacher would run it) on random-weight pipelines of SD 2.1-base's and SDXL's layouts, built small
   (64 and 128 px: how many calls a notebook makes does not depend on the resolution) and marked random, so
   they take the real-model code paths (inputs generated from the papers' prompts, scenes scaled to the
   model's size). benchmarks/count_calls.py, loaded into each kernel, counts every UNet forward (and how many
   latents it carried), with or without gradients (token learning), and every VAE encode and decode.
   Notebook 11 runs on the AudioLDM 2 layout at its native 10.24 s. SDXL is counted for 09 and 10 only, where
   its path differs (no token learning); elsewhere its counts are SD 2.1's.
2. Per-call cost, stated, not measured here (no GPU): fal-ai/stable-diffusion-benchmarks, an A100 80 GB SXM,
   diffusers with torch 2.1 SDPA in float16, 50 guided steps end to end: SD 1.5 at 512 px 31.19 it/s and
   SDXL at 1024 px 8.43 it/s, one "it" a guided UNet call of 2 latents. So one latent through the UNet costs
   16.0 ms (SD 1.x/2.x-base at 512 px: SD 2.1-base's UNet has SD 1.5's channels) and 59.3 ms (SDXL at 1024 px).
   A VAE encode or decode costs the UNet's per-latent time times their ratio of floating-point operations,
   counted on the meta device. A training step (forward and backward through the frozen UNet) costs 3
   forwards, the usual rule (stated, not measured). AudioLDM 2 has no published per-call time we can cite: its counts are reported,
   its time is not.
3. Memory, counted on the meta device: the pipeline's weights in float16 (SDXL's VAE in float32, as load keeps
   it) plus the activations alive at once in one UNet call at the notebook's largest batch, in float16,
   with attention materialized (an upper bound: flash attention does not hold the score matrix).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import weakref
from pathlib import Path

import torch

HERE = Path(__file__).parent
OUT = HERE / "results"
NOTEBOOKS = HERE.parent / "notebooks"
CACHE = OUT / "gpu_calls"
UNET_MS = {"sd21": 1000 / 31.19 / 2, "sdxl": 1000 / 8.43 / 2}        # per latent, A100, fp16 (fal-ai)
TRAIN_FORWARDS = 3
JOBS = [(f"{n:02d}", "sd21") for n in range(11)] + [("09", "sdxl"), ("10", "sdxl"), ("11", "audioldm2")]
JUDGES = (("CLIP", "clip"), ("DETECTOR", "owlv2"), ("SEGMENTER", "sam"), ("LPIPS", "lpips"), ("CLAP", "clap"))


# ------------------------------------------------------------------ 1. counts
def count_folders(root: Path) -> dict[str, str]:
    """Small random pipelines of the real layouts (real-model code paths, any resolution), and the judges."""
    from conceptlab.models import RANDOM_MARK, quiet_loading
    from conceptlab.toy import tiny

    tok = tiny.english_tokenizer(root / "_vocab")
    folders = {}
    for name, build in (("sd21", lambda: tiny.sd21_base(tok, size=64)), ("sdxl", lambda: tiny.sdxl_base(tok, size=128))):
        folder = root / name
        if not (folder / RANDOM_MARK).exists():
            with quiet_loading():
                build().save_pretrained(folder)
            (folder / RANDOM_MARK).write_text(json.dumps({"random_weights": True}))
        folders[name] = str(folder)
    folders.update(tiny.save_real_shapes(root, which=("audioldm2", "clip", "owlv2", "sam", "lpips", "clap")))
    return folders


def count(root: Path):
    import papermill

    os.environ.update(CONCEPTLAB_STATIC="1", MPLBACKEND="Agg", TQDM_DISABLE="1",
                      PYTHONSTARTUP=str(HERE / "count_calls.py"))
    folders = count_folders(root)
    CACHE.mkdir(parents=True, exist_ok=True)
    for number, shape in JOBS:
        target = CACHE / f"{number}-{shape}.json"
        if target.exists():                                  # resumable: a stopped run goes on where it stopped
            continue
        path = next(NOTEBOOKS.glob(f"{number}_*.ipynb"))
        declared = papermill.inspect_notebook(str(path))
        params = {"MODEL": folders[shape], **{k: folders[f] for k, f in JUDGES if k in declared}}
        if "PIXEL" in declared:                  # notebook 07 looks at one cell of the small pipeline's 8x8 grid
            params["PIXEL"] = [3, 5]
        partial = root / f"{number}-{shape}.calls.json"
        os.environ["CONCEPTLAB_COUNT_CALLS"] = str(partial)
        t0 = time.time()
        papermill.execute_notebook(str(path), str(root / f"{number}-{shape}.ipynb"), parameters=params,
                                   kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False)
        target.write_text(json.dumps({"notebook": path.stem, "shape": shape, "cpu_seconds": round(time.time() - t0),
                                      "counts": json.loads(partial.read_text())}, indent=1))
        print(f"{number} on {shape}: counted in {time.time() - t0:.0f} s", flush=True)


# ------------------------------------------------------------------ 2-3. costs on the meta device
class LiveBytes(torch.utils._python_dispatch.TorchDispatchMode):
    """The most bytes of op outputs alive at once while it is on (views are not counted twice)."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0

    def _free(self, n: int):
        self.live -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and not t._is_view():
                n = t.numel() * t.element_size()
                self.live += n
                self.peak = max(self.peak, self.live)
                weakref.finalize(t, self._free, n)
        return out


class _FlashAttention(torch.autograd.Function):
    """Attention's memory as a fused kernel holds it (flash / memory-efficient SDPA): the output, and for the
    backward q, k, v, out and the log-sum-exp rows; never the (L x L) scores. Shapes only (meta tensors)."""

    @staticmethod
    def forward(ctx, q, k, v):
        out = q.new_empty(q.shape[:-1] + v.shape[-1:])
        ctx.save_for_backward(q, k, v, out, q.new_empty(q.shape[:-1]))
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, _, _ = ctx.saved_tensors
        return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


@contextlib.contextmanager
def flash_attention():
    """F.scaled_dot_product_attention as a fused GPU kernel would hold memory, while counting bytes."""
    import torch.nn.functional as F

    original = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = lambda q, k, v, *args, **kwargs: _FlashAttention.apply(q, k, v)
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


def flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def meta_costs() -> dict:
    """Per layout: weights (bytes, as loaded in float16), UNet FLOPs and peak activations per latent, VAE FLOPs."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    sys.path.insert(0, str(HERE))
    from recorder_real_shapes import SD21, SDXL

    text = {"sd21": [(CLIPTextModel, dict(hidden_size=1024, num_hidden_layers=23, num_attention_heads=16,
                                          intermediate_size=4096, projection_dim=1024))],
            "sdxl": [(CLIPTextModel, dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                          intermediate_size=3072)),
                     (CLIPTextModelWithProjection, dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=20,
                                                        intermediate_size=5120, projection_dim=1280))]}
    out = {}
    for name, config in (("sd21", SD21), ("sdxl", SDXL)):
        side = config["sample_size"]
        with torch.device("meta"):
            unet = UNet2DConditionModel.from_config(config)
            vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
            encoders = [cls(CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, **kw)) for cls, kw in text[name]]
            z, image = torch.empty(1, 4, side, side), torch.empty(1, 3, 8 * side, 8 * side)
            states = torch.empty(1, 77, config["cross_attention_dim"])
            added = None
            if config.get("addition_embed_type") == "text_time":
                pooled = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
                added = {"text_embeds": torch.empty(1, pooled), "time_ids": torch.empty(1, 6)}

        def call(batch: int = 1, train: bool = False):
            """One UNet call; train: gradients flow to the text states (token learning) and back."""
            text_states = states.expand(batch, -1, -1).clone().requires_grad_(train)
            with torch.set_grad_enabled(train):
                out = unet(z.expand(batch, -1, -1, -1), torch.tensor(500), encoder_hidden_states=text_states,
                           added_cond_kwargs=None if added is None else {k: v.expand(batch, -1) for k, v in added.items()})
                if train:
                    out.sample.float().pow(2).mean().backward()

        with torch.no_grad():
            decode, encode = flops(lambda: vae.decode(z)), flops(lambda: vae.encode(image))
        peak, train_peak = {}, {}
        for batch in (1, 2, 4, 8):
            for into, train in ((peak, False), (train_peak, True)):
                with flash_attention(), LiveBytes() as live:
                    call(batch, train)
                into[batch] = live.peak // 2                            # counted in float32: float16 halves it
        vae_peak = {}
        for what, fn in (("decode", lambda: vae.decode(z)), ("encode", lambda: vae.encode(image))):
            with torch.no_grad(), flash_attention(), LiveBytes() as live:
                fn()
            vae_peak[what] = live.peak // (1 if name == "sdxl" else 2)   # SDXL's VAE runs in float32
        vae_bytes = sum(p.numel() for p in vae.parameters()) * (4 if name == "sdxl" else 2)
        out[name] = dict(
            weights_bytes=2 * sum(p.numel() for m in [unet, *encoders] for p in m.parameters()) + vae_bytes,
            unet_parameters=sum(p.numel() for p in unet.parameters()), unet_flops=flops(call),
            vae_decode_flops=decode, vae_encode_flops=encode, unet_peak_activation_bytes=peak,
            unet_training_peak_activation_bytes=train_peak, vae_peak_activation_bytes_per_image=vae_peak)
    return out


def notebook_cost(counts: dict, costs: dict, shape: str) -> dict:
    c = costs[shape]
    unet_ms = UNET_MS[shape]
    per = {"unet": unet_ms, "unet_with_grad": TRAIN_FORWARDS * unet_ms,
           "vae_decode": unet_ms * c["vae_decode_flops"] / c["unet_flops"],
           "vae_encode": unet_ms * c["vae_encode_flops"] / c["unet_flops"]}
    per["vae_decode_with_grad"], per["vae_encode_with_grad"] = 3 * per["vae_decode"], 3 * per["vae_encode"]
    seconds = sum(entry["latents"] * per[kind] for kind, entry in counts.items()) / 1000
    activation = 0
    for kind, key in (("unet", "unet_peak_activation_bytes"), ("unet_with_grad", "unet_training_peak_activation_bytes")):
        if kind in counts:
            batch, peaks = counts[kind]["max_batch"], c[key]
            fits = min((b for b in peaks if b >= batch), default=max(peaks))     # the next batch measured
            activation = max(activation, peaks[fits] * max(1, batch / fits))
    for kind in ("decode", "encode"):             # on real models conceptlab runs the VAE one image at a time
        if f"vae_{kind}" in counts:
            activation = max(activation, c["vae_peak_activation_bytes_per_image"][kind])
    return dict(seconds=seconds, memory_bytes=c["weights_bytes"] + activation)


def report():
    costs = meta_costs()
    rows = {}
    for number, shape in JOBS:
        path = CACHE / f"{number}-{shape}.json"
        if not path.exists():
            print(f"{number} on {shape}: not counted yet (run with --count)")
            continue
        counted = json.loads(path.read_text())
        row = dict(shape=shape, counts=counted["counts"])
        if shape in costs:
            row.update(notebook_cost(counted["counts"], costs, shape))
            if shape == "sd21":               # SDXL's counts equal SD 2.1's wherever they were not counted apart
                xl = notebook_cost(counted["counts"], costs, "sdxl") if not (CACHE / f"{number}-sdxl.json").exists() else None
                if xl:
                    rows[f"{number} sdxl"] = dict(shape="sdxl", counts=counted["counts"], **xl, counted_on="sd21")
        rows[f"{number} {shape}"] = row
    result = dict(unet_ms_per_latent=UNET_MS, train_forwards=TRAIN_FORWARDS, meta=costs, notebooks=rows,
                  source="fal-ai/stable-diffusion-benchmarks: A100 80GB SXM, diffusers + torch 2.1 SDPA, fp16: "
                         "SD 1.5 512 px 31.19 it/s, SDXL 1024 px 8.43 it/s (it = one guided UNet call, 2 latents)")
    OUT.mkdir(exist_ok=True)
    (OUT / "gpu_cost.json").write_text(json.dumps(result, indent=1))
    print(f"{'notebook':14s} {'UNet latents':>12s} {'train steps':>11s} {'VAE':>5s} {'A100 time':>10s} {'memory':>8s}")
    for key, r in sorted(rows.items()):
        n = r["counts"]
        vae = sum(v["latents"] for k, v in n.items() if k.startswith("vae"))
        time_s = f"{r['seconds'] / 60:8.1f} min" if "seconds" in r else "       n/a"
        memory = f"{r['memory_bytes'] / 2**30:6.1f} GiB" if "memory_bytes" in r else "     n/a"
        print(f"{key:14s} {n.get('unet', {}).get('latents', 0):12d} {n.get('unet_with_grad', {}).get('latents', 0):11d} "
              f"{vae:5d} {time_s} {memory}")
    print(f"written to {OUT / 'gpu_cost.json'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", action="store_true", help="run the notebooks and count their calls first")
    parser.add_argument("--root", default="/tmp/conceptlab-gpu-cost", help="where the small pipelines are written")
    args = parser.parse_args()
    if args.count:
        count(Path(args.root))
    report()
