"""A toy-shapes UNet forward + backward (batch 64, 16x16 latents) under each attention path and torch.compile: seconds
per call, averaged after warm-up calls. Run on a quiet machine (compiling takes about 2 minutes):

    .venv/bin/python benchmarks/unet_step_backends.py
"""
import time, torch
from conceptlab.toy import nets
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
from torch.nn.attention import sdpa_kernel, SDPBackend
torch.manual_seed(0)
unet = nets.unet()
cond = torch.randn(64, 12, nets.TEXT_WIDTH)
z0 = torch.randn(64, 4, 16, 16); t = torch.randint(0, 1000, (64,))
def run(m, n=8):
    for i in range(2): m(z0, t, cond).sample.square().mean().backward()
    t0 = time.perf_counter()
    for i in range(n): m(z0, t, cond).sample.square().mean().backward()
    return (time.perf_counter() - t0) / n
print("sdpa default", run(unet))
with sdpa_kernel(SDPBackend.MATH):
    print("sdpa math", run(unet))
unet.set_attn_processor(AttnProcessor())
print("AttnProcessor (baddbmm)", run(unet))
unet.set_attn_processor(AttnProcessor2_0())
t0 = time.perf_counter(); c = torch.compile(unet); print("compiled", run(c), "compile+warm s", time.perf_counter()-t0)
