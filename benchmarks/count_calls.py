"""Counts the network calls a notebook makes, for benchmarks/gpu_cost.py: loaded into the notebook's kernel
as its PYTHONSTARTUP file, it counts every forward of a UNet, a VAE encoder and a VAE decoder (the latents of
each call, and whether gradients flowed, as in token learning) and writes the counts as JSON to the path in
CONCEPTLAB_COUNT_CALLS when the kernel exits. Not imported by conceptlab."""
import atexit
import json
import os

import torch

_CONCEPTLAB_COUNTED = {"UNet2DConditionModel": "unet", "AudioLDM2UNet2DConditionModel": "unet",
           "Encoder": "vae_encode", "Decoder": "vae_decode"}
_conceptlab_call_counts: dict[str, dict[str, int]] = {}   # a unique name: this file runs in the notebook's namespace


def _conceptlab_batch(value) -> int:
    value = getattr(value, "sample", value)
    if isinstance(value, (tuple, list)):
        value = value[0]
    return int(value.shape[0]) if isinstance(value, torch.Tensor) and value.dim() > 0 else 1


def _conceptlab_count(module, args, output):
    kind = _CONCEPTLAB_COUNTED.get(type(module).__name__)
    if kind is None or not type(module).__module__.startswith("diffusers"):
        return
    key = kind + ("_with_grad" if torch.is_grad_enabled() else "")
    entry = _conceptlab_call_counts.setdefault(key, {"calls": 0, "latents": 0, "max_batch": 0, "shape": []})
    batch = _conceptlab_batch(output)
    entry["calls"] += 1
    entry["latents"] += batch
    entry["max_batch"] = max(entry["max_batch"], batch)
    value = getattr(output, "sample", output)
    if isinstance(value, torch.Tensor) and not entry["shape"]:
        entry["shape"] = list(value.shape[1:])


@atexit.register
def _conceptlab_write():
    path = os.environ.get("CONCEPTLAB_COUNT_CALLS")
    if path:
        with open(path, "w") as f:
            json.dump(_conceptlab_call_counts, f, indent=1)


torch.nn.modules.module.register_module_forward_hook(_conceptlab_count)
