"""A toy-shapes UNet forward + backward (batch 64, 16x16 latents) under each attention path, bfloat16 autocast and torch.compile:
seconds per call, averaged over 8 calls after 2 of warm-up. Run on a quiet machine (compiling takes about 2 minutes):

    .venv/bin/python benchmarks/unet_step_backends.py [--no-compile]
"""
from __future__ import annotations

import argparse
import time

import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
from torch.nn.attention import SDPBackend, sdpa_kernel

from conceptlab.toy import nets


def seconds_per_call(unet, inputs, calls: int = 8, warmup: int = 2) -> float:
    """Mean seconds of one forward + backward of unet on inputs (z, t, cond)."""
    for _ in range(warmup):
        unet(*inputs).sample.square().mean().backward()
    t0 = time.perf_counter()
    for _ in range(calls):
        unet(*inputs).sample.square().mean().backward()
    return (time.perf_counter() - t0) / calls


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-compile", action="store_true", help="leave torch.compile out (it takes minutes)")
    args = p.parse_args()
    torch.manual_seed(0)
    unet = nets.unet()
    inputs = (torch.randn(64, 4, nets.LATENT, nets.LATENT), torch.randint(0, 1000, (64,)),
              torch.randn(64, 12, nets.TEXT_WIDTH))                     # latents, timesteps, text states
    print(f"{torch.get_num_threads()} threads, seconds per forward + backward:")
    print("  scaled_dot_product_attention, default kernel:", round(seconds_per_call(unet, inputs), 3))
    with sdpa_kernel(SDPBackend.MATH):
        print("  scaled_dot_product_attention, math kernel:", round(seconds_per_call(unet, inputs), 3))
    with torch.autocast("cpu", dtype=torch.bfloat16):                   # weights fp32, matmuls and convs bf16
        print("  bfloat16 autocast:", round(seconds_per_call(unet, inputs), 3))
    unet.to(memory_format=torch.channels_last)                         # oneDNN's preferred layout for convs
    z = inputs[0].contiguous(memory_format=torch.channels_last)
    print("  channels_last:", round(seconds_per_call(unet, (z, *inputs[1:])), 3))
    unet.to(memory_format=torch.contiguous_format)
    unet.set_attn_processor(AttnProcessor())
    print("  AttnProcessor (baddbmm + softmax):", round(seconds_per_call(unet, inputs), 3))
    unet.set_attn_processor(AttnProcessor2_0())
    if args.no_compile:
        return
    t0 = time.perf_counter()
    compiled = torch.compile(unet)
    print("  torch.compile:", round(seconds_per_call(compiled, inputs), 3),
          f"(compiling and warm-up {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
