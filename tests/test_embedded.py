"""The shipped models: they load offline, are small, and do what the course needs (integration)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from conceptlab import inversion
from conceptlab.models import EMBEDDED
from conceptlab.worlds import oracle, shapes


def test_weights_ship_small_and_as_safetensors():
    files = [p for p in Path(EMBEDDED).rglob("*") if p.is_file()]
    weights = [p for p in files if p.suffix in (".safetensors", ".bin", ".pt", ".ckpt")]
    assert weights and all(p.suffix == ".safetensors" for p in weights)
    assert sum(p.stat().st_size for p in files) < 25 * 2**20


def test_toy_shapes_is_a_genuine_stable_diffusion_pipeline(toy):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    p = toy.pipe
    assert isinstance(p, StableDiffusionPipeline) and isinstance(p.unet, UNet2DConditionModel)
    assert isinstance(p.vae, AutoencoderKL) and isinstance(p.text_encoder, CLIPTextModel)
    assert isinstance(p.tokenizer, CLIPTokenizer) and isinstance(p.scheduler, DDIMScheduler)
    assert toy.latent_shape[1:] == (16, 16)
    cross = {n for n, m in p.unet.named_modules() if n.endswith("attn2")}
    assert any(n.startswith("down_blocks.0") for n in cross) and any(n.startswith("mid_block") for n in cross)


def test_one_object_prompts_are_drawn(toy):
    prompts = [f"a {lab}" for lab in shapes.LABELS]
    images = toy.generate(prompts, steps=20, guidance=5.0, seed=0)
    hits = sum(oracle.is_present(im, p) for im, p in zip(images, prompts))
    assert hits >= 9, f"only {hits}/12 one-object prompts drawn"


def test_inversion_reconstructs_heldout_scenes(toy):
    for i in range(2):
        s = shapes.scene("heldout", i)
        inv = inversion.invert(toy, s.image, s.caption, steps=20)
        rec = inversion.reconstruct(toy, inv)
        x = torch.from_numpy(s.image).permute(2, 0, 1)[None].float() / 127.5 - 1
        psnr = 10 * torch.log10(4 / ((rec - x) ** 2).mean())
        assert psnr > 27, float(psnr)


def test_toy_clip_zero_shot(toy_clip):
    sc = shapes.scenes("heldout", 24, n_objects=1)
    cands = [f"a {l}" for l in shapes.LABELS]
    pred = toy_clip.classify([s.pil() for s in sc], cands)
    acc = np.mean([p == f"a {s.labels[0]}" for p, s in zip(pred, sc)])
    assert acc >= 0.8
    with pytest.raises(ValueError, match="at least two"):
        toy_clip.zero_shot([sc[0].pil()], ["a red circle"])
