"""The model face over SDXL: a tiny random StableDiffusionXLPipeline built in code (two text encoders,
pooled output and time ids), so that every method written against the face runs on SDXL unchanged."""
import pytest
import torch

from conceptlab import inversion
from conceptlab.models import Model
from conceptlab.toy import vocab


@pytest.fixture(scope="module")
def sdxl():
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    tok = vocab.tokenizer()
    text_cfg = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                    num_attention_heads=2, max_position_embeddings=vocab.MAX_LENGTH, projection_dim=32,
                    bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64, attention_head_dim=(2, 4), norm_num_groups=16, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32)
    vae = AutoencoderKL(block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=16, sample_size=16)
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=CLIPTextModel(CLIPTextConfig(**text_cfg)),
                                     text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**text_cfg)),
                                     tokenizer=tok, tokenizer_2=tok, unet=unet, scheduler=sched)
    return Model(pipe, "tiny-sdxl")


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
