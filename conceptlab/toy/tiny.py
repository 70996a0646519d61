"""Tiny random pipelines of the real backbones' shapes, built in code (no file, no hub), for tests and
benchmarks: the same conceptlab code must run on SD 2.x, SDXL and AudioLDM 2 as on toy-shapes.

Text encoders are small CLIPTextModels over the toy vocabulary (vocab.py), so prompts use the toy world's
words. Weights are random (seeded): these pipelines check plumbing and shapes, never quality.
"""
from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from . import vocab

WIDTH = 32


def _text_config(**kw) -> CLIPTextConfig:
    tok = vocab.tokenizer()
    return CLIPTextConfig(vocab_size=len(tok), hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=1,
                          num_attention_heads=2, max_position_embeddings=vocab.MAX_LENGTH, projection_dim=WIDTH,
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **kw)


def _vae(sample_size: int) -> AutoencoderKL:
    return AutoencoderKL(block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         norm_num_groups=16, sample_size=sample_size)


def _scheduler() -> DDIMScheduler:
    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1)


def sd2_unet(sample_size: int = 16) -> UNet2DConditionModel:
    """SD 2.1's UNet layout, shrunk: three cross-attention down blocks and a plain one, linear projections
    in the transformers, heads growing with depth, a cross-attention middle block."""
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 32, 64, 64), norm_num_groups=16, cross_attention_dim=WIDTH,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        attention_head_dim=(2, 4, 8, 8), use_linear_projection=True)


def sd2(sample_size: int = 16) -> StableDiffusionPipeline:
    """A tiny random StableDiffusionPipeline shaped like SD 2.1 (images of 2 x sample_size pixels)."""
    torch.manual_seed(0)
    return StableDiffusionPipeline(vae=_vae(2 * sample_size), text_encoder=CLIPTextModel(_text_config()),
                                   tokenizer=vocab.tokenizer(), unet=sd2_unet(sample_size), scheduler=_scheduler(),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def sdxl() -> StableDiffusionXLPipeline:
    """A tiny random StableDiffusionXLPipeline: two text encoders (the second with projection: the pooled
    embedding), "text_time" added conditions, 16x16 images over 8x8 latents."""
    torch.manual_seed(0)
    tok = vocab.tokenizer()
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=2 * WIDTH, attention_head_dim=(2, 4), norm_num_groups=16, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + WIDTH)
    return StableDiffusionXLPipeline(vae=_vae(16), text_encoder=CLIPTextModel(_text_config()),
                                     text_encoder_2=CLIPTextModelWithProjection(_text_config()),
                                     tokenizer=tok, tokenizer_2=tok, unet=unet, scheduler=_scheduler())


def audioldm2_unet():
    """AudioLDM 2's UNet (diffusers' AudioLDM2UNet2DConditionModel), shrunk: every transformer block attends
    to two encoder sequences (the GPT-2 generated one and the T5 one), each with its own attn2 layer.
    Called as unet(z, t, encoder_hidden_states=a, encoder_hidden_states_1=b)."""
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2UNet2DConditionModel

    torch.manual_seed(0)
    return AudioLDM2UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=([None, 16, 32], [None, 16, 32]), attention_head_dim=(2, 4), norm_num_groups=16)
