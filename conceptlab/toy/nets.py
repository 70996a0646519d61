"""Architectures of the embedded models: genuine diffusers / transformers modules, tiny.

toy-shapes is a Stable-Diffusion-shaped pipeline on 32x32 scenes:
  AutoencoderKL   32x32x3 <-> 16x16x4 latents (one down-sampling, 32/64 channels)
  UNet            16x16 latents; attention (self + cross) at 16x16, 8x8 and the 4x4 middle, like SD's
                  64/32/16 + 8 layout; blocks (32, 64, 64); cross-attention dim 64
  CLIPTextModel   2 layers, width 64, 32 positions; trained jointly with the UNet
  CLIPTokenizer   the world's words, one token each (vocab.py)
  DDIMScheduler   SD's scaled-linear betas (0.00085 .. 0.012, 1000 steps), epsilon prediction
toy-clip is a transformers CLIPModel (ViT with 4x4 patches on 32x32 images, same text tower size).

toy-sounds is the same kind of pipeline on log-mel spectrograms, laid out as AudioLDM 2 lays them out
(time as height, 64 mel bands as width), as 1-channel 208 x 64 images (2 s, frames padded to a multiple of 8):
  AutoencoderKL   208x64x1 <-> 52x16x4 latents (two down-samplings, 16/32/32 channels, no attention)
  UNet            52x16 latents; attention (self + cross) at 26x8, 13x4 and the 13x4 middle; blocks (32, 64, 64)
  CLIPTextModel   as toy-shapes', over the sounds vocabulary
"""
from __future__ import annotations

from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel, CLIPVisionConfig

from ..worlds.shapes import SIZE
from . import vocab

LATENT = SIZE // 2
TEXT_WIDTH = 64
SOUND_FRAMES, SOUND_MELS = 208, 64             # toy-sounds' spectrogram "image": (1, 208, 64)


def vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=SIZE,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=16,
    )


def unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=LATENT, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=16,
        cross_attention_dim=TEXT_WIDTH, attention_head_dim=4,   # diffusers' name: 4 heads per layer
    )


def sound_vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=1, out_channels=1, latent_channels=4, sample_size=SOUND_FRAMES,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 32), layers_per_block=1, norm_num_groups=16, mid_block_add_attention=False,
    )


def sound_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=(SOUND_FRAMES // 4, SOUND_MELS // 4), in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=16,
        cross_attention_dim=TEXT_WIDTH, attention_head_dim=4,
    )


def text_config(vocab_size: int, vocab_dir=vocab.VOCAB_DIR) -> CLIPTextConfig:
    tok = vocab.tokenizer(vocab_dir)
    return CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=TEXT_WIDTH, intermediate_size=4 * TEXT_WIDTH,
        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=vocab.MAX_LENGTH,
        projection_dim=TEXT_WIDTH, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def text_encoder(vocab_dir=vocab.VOCAB_DIR) -> CLIPTextModel:
    return CLIPTextModel(text_config(len(vocab.tokenizer(vocab_dir)), vocab_dir))


def scheduler(kind: str = "ddim"):
    kw = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
              prediction_type="epsilon", clip_sample=False)
    if kind == "ddpm":
        return DDPMScheduler(**kw)
    return DDIMScheduler(**kw, set_alpha_to_one=False, steps_offset=1)


def clip() -> CLIPModel:
    text = text_config(len(vocab.tokenizer()))
    vision = CLIPVisionConfig(hidden_size=TEXT_WIDTH, intermediate_size=4 * TEXT_WIDTH, num_hidden_layers=3,
                              num_attention_heads=4, image_size=SIZE, patch_size=4, projection_dim=TEXT_WIDTH)
    return CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=TEXT_WIDTH))
