"""The model face over SDXL: a tiny random StableDiffusionXLPipeline built in code (two text encoders,
pooled output and time ids), so that every method written against the face runs on SDXL unchanged."""
import pytest
import torch

from conceptlab import inversion
from conceptlab.models import Model
from conceptlab.toy import tiny


@pytest.fixture(scope="module")
def sdxl():
    return Model(tiny.sdxl(), "tiny-sdxl")


def test_sdxl_face(sdxl):
    assert sdxl.kind == "sdxl" and sdxl.image_size == (16, 16) and sdxl.latent_shape == (4, 8, 8)
    c = sdxl.encode_text(["a red circle", ""])
    assert c.hidden.shape == (2, 32, 64) and c.pooled.shape == (2, 32) and c.time_ids.shape == (2, 6)
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    assert sdxl.eps(z, 400, c).shape == (2, 4, 8, 8)


def test_sdxl_sampler_matches_the_pipeline(sdxl):
    """Same result as StableDiffusionXLPipeline given the same null condition. (The pipeline's own default,
    force_zeros_for_empty_prompt, uses zeros for the null prompt; conceptlab uses the real encoding of "".)"""
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    c, n = sdxl.encode_text("a red circle"), sdxl.null()
    ours = sdxl.decode(inversion.sample(sdxl, z, c, steps=4, guidance=3.0))
    theirs = sdxl.pipe(prompt_embeds=c.hidden, pooled_prompt_embeds=c.pooled, negative_prompt_embeds=n.hidden,
                       negative_pooled_prompt_embeds=n.pooled, num_inference_steps=4, guidance_scale=3.0,
                       latents=z.clone(), height=16, width=16, output_type="pt").images * 2 - 1
    assert torch.allclose(ours, theirs, atol=2e-3)


def test_sdxl_generate_and_invert(sdxl):
    im = sdxl.generate("a blue square", steps=3, seed=0)
    assert im.size == (16, 16)
    inv = inversion.invert(sdxl, im, "a blue square", steps=3)
    assert inv.latents.shape == (4, 4, 8, 8)
