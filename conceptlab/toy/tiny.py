"""Tiny random pipelines of the real backbones' shapes, built in code (no file, no hub), for tests and
benchmarks: the same conceptlab code must run on SD 2.x, SDXL and AudioLDM 2 as on toy-shapes.

Text encoders are small CLIPTextModels over the toy vocabulary (vocab.py), so prompts use the toy world's
words. Weights are random (seeded): these pipelines check plumbing and shapes, never quality.
"""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from ..models import RANDOM_MARK
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


def audioldm2_unet(sample_size: int = 8, channels: int = 4):
    """AudioLDM 2's UNet (diffusers' AudioLDM2UNet2DConditionModel), shrunk: every transformer block attends
    to two encoder sequences (the GPT-2 generated one and the T5 one), each with its own attn2 layer.
    Called as unet(z, t, encoder_hidden_states=a, encoder_hidden_states_1=b)."""
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2UNet2DConditionModel

    torch.manual_seed(0)
    return AudioLDM2UNet2DConditionModel(
        sample_size=sample_size, in_channels=channels, out_channels=channels, block_out_channels=(32, 64),
        layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=([None, 16, 32], [None, 16, 32]), attention_head_dim=(2, 4), norm_num_groups=16)


def _word_tokenizer(cls, pad: str, extra: list[str]):
    """A fast tokenizer of class `cls` over the toy vocabulary's words (one token per word, split on spaces)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = [pad, "<unk>", "<s>", "</s>"] + extra + list(vocab.WORDS) + vocab.PUNCTUATION
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return cls(tokenizer_object=tok, pad_token=pad, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
               model_max_length=vocab.MAX_LENGTH)


def file_tokenizers(out: Path):
    """RoBERTa's and T5's tokenizers from vocabulary files made here, as a downloaded checkpoint has them:
    byte-level BPE vocab.json + merges.txt (RoBERTa's format) and a SentencePiece unigram model (T5's kind),
    both trained with `tokenizers` on the toy and sounds vocabularies (no sentencepiece package needed)."""
    from tokenizers import ByteLevelBPETokenizer, SentencePieceUnigramTokenizer
    from transformers import RobertaTokenizerFast, T5TokenizerFast

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    words = list(vocab.WORDS) + list(vocab.SOUND_WORDS)
    text = [" ".join(words[i:i + 6]) for i in range(0, len(words), 3)]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(text, vocab_size=600, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(out))                                     # vocab.json + merges.txt
    roberta = RobertaTokenizerFast.from_pretrained(out, model_max_length=vocab.MAX_LENGTH)   # reads the two files
    unigram = SentencePieceUnigramTokenizer()
    unigram.train_from_iterator(text * 4, vocab_size=120, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>")
    unigram.save(str(out / "t5_unigram.json"))
    t5 = T5TokenizerFast(tokenizer_file=str(out / "t5_unigram.json"), pad_token="<pad>", eos_token="</s>",
                         unk_token="<unk>", extra_ids=0, model_max_length=vocab.MAX_LENGTH)
    return roberta, t5


def _tiny_clap(vocab_size: int, spec_size: int, window_size: int, hidden_size: int, patch: int):
    """A narrow random ClapModel: a one-layer text branch over `vocab_size` tokens and a two-stage Swin audio
    branch on a `spec_size` spectrogram (LAION's CLAP: 256, the clip's 64 mel bands folded in)."""
    from transformers import ClapAudioConfig, ClapConfig, ClapModel, ClapTextConfig

    text = ClapTextConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_attention_heads=2,
                          num_hidden_layers=1, max_position_embeddings=vocab.MAX_LENGTH + 2, pad_token_id=0,
                          bos_token_id=2, eos_token_id=3, projection_dim=16)
    audio = ClapAudioConfig(spec_size=spec_size, window_size=window_size, num_mel_bins=64, intermediate_size=32,
                            depths=[1, 1], num_attention_heads=[2, 2], num_hidden_layers=2, hidden_size=hidden_size,
                            patch_size=patch, patch_stride=patch, patch_embeds_hidden_size=8, projection_dim=16)
    return ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16))


def audioldm2(vocab_dir: Path | None = None, native: bool = False):
    """A tiny random AudioLDM2Pipeline: CLAP text branch, T5 encoder, projection, GPT-2 that generates 8
    conditioning vectors, the two-stream UNet above, a 1-channel mel VAE and a HiFi-GAN vocoder with AudioLDM 2's
    framing. Tokenizers are word-level over the toy vocabulary built in code, or, with vocab_dir, read from
    vocabulary files written there (file_tokenizers)."""
    from diffusers import AudioLDM2Pipeline
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2ProjectionModel
    from transformers import (ClapFeatureExtractor, GPT2Config, GPT2LMHeadModel, RobertaTokenizerFast, SpeechT5HifiGan,
                              SpeechT5HifiGanConfig, T5Config, T5EncoderModel, T5TokenizerFast)

    torch.manual_seed(0)
    if vocab_dir is None:
        roberta = _word_tokenizer(RobertaTokenizerFast, "<pad>", [])
        t5 = _word_tokenizer(T5TokenizerFast, "<pad>", [])
    else:
        roberta, t5 = file_tokenizers(vocab_dir)
    clap = _tiny_clap(len(roberta), spec_size=64, window_size=4, hidden_size=32, patch=2)
    t5_encoder = T5EncoderModel(T5Config(vocab_size=len(t5), d_model=32, d_ff=37, d_kv=8, num_layers=1, num_heads=2,
                                         pad_token_id=0, eos_token_id=3))
    gpt = GPT2LMHeadModel(GPT2Config(n_embd=16, n_head=2, n_layer=1, vocab_size=8, n_positions=64, max_new_tokens=8,
                                     bos_token_id=0, eos_token_id=0))
    projection = AudioLDM2ProjectionModel(text_encoder_dim=16, text_encoder_1_dim=32, langauge_model_dim=16)
    if native:          # AudioLDM 2's own sizes: 10.24 s, 1024 frames, a 4x VAE to 8-channel 256 x 16 latents
        unet = audioldm2_unet(sample_size=256, channels=8)
        vae = AutoencoderKL(block_out_channels=(8, 8, 16), in_channels=1, out_channels=1, latent_channels=8,
                            down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                            norm_num_groups=8, layers_per_block=1, mid_block_add_attention=False)
    else:
        unet = audioldm2_unet()
        vae = AutoencoderKL(block_out_channels=(16, 32), in_channels=1, out_channels=1, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                            norm_num_groups=16)
    # AudioLDM 2's framing: 64 mel bands, 160 samples per frame (8 x 5 x 4), at 16 kHz
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(model_in_dim=64, sampling_rate=16000, upsample_initial_channel=16,
                                                    upsample_rates=[8, 5, 4], upsample_kernel_sizes=[16, 10, 8],
                                                    resblock_kernel_sizes=[3, 7], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
                                                    normalize_before=False))
    return AudioLDM2Pipeline(vae=vae, text_encoder=clap, text_encoder_2=t5_encoder, projection_model=projection,
                             language_model=gpt, tokenizer=roberta, tokenizer_2=t5,
                             feature_extractor=ClapFeatureExtractor(), unet=unet, scheduler=_scheduler(), vocoder=vocoder)


class VPredictionTwin(UNet2DConditionModel):
    """An epsilon-prediction UNet re-expressed as a v-prediction one, exactly: it returns
    v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0_hat(z_t, eps). The pair (eps UNet, its v twin) tests that
    conceptlab treats a v-prediction checkpoint as the model it is: every result must match the eps twin's."""

    def forward(self, sample, timestep, *args, **kwargs):
        from ..ddim import predict_x0, v_target

        out = super().forward(sample, timestep, *args, **kwargs)
        eps = out.sample if hasattr(out, "sample") else out[0]
        abar = self.twin_alphas[torch.as_tensor(timestep).long().flatten().cpu()].to(sample.device, sample.dtype)
        abar = abar.view(-1, 1, 1, 1) if abar.numel() > 1 else abar[0]
        v = v_target(predict_x0(sample, eps, abar), eps, abar)
        if hasattr(out, "sample"):
            out.sample = v
            return out
        return (v,)


def v_twin(pipe):
    """The v-prediction twin of an epsilon-prediction pipeline: the same weights, a VPredictionTwin UNet and a
    scheduler whose prediction_type is "v_prediction". The input pipeline is not modified."""
    import copy

    twin = VPredictionTwin.from_config(pipe.unet.config)
    twin.load_state_dict(pipe.unet.state_dict())
    twin.twin_alphas = pipe.scheduler.alphas_cumprod.clone()
    scheduler = DDIMScheduler.from_config({**pipe.scheduler.config, "prediction_type": "v_prediction"})
    parts = {k: (copy.deepcopy(v) if isinstance(v, torch.nn.Module) else v) for k, v in pipe.components.items()}
    extra = {"requires_safety_checker": False} if "safety_checker" in parts else {}
    return type(pipe)(**{**parts, "unet": twin.eval(), "scheduler": scheduler}, **extra)


# ------------------------------------------------------------------ the real shapes, saved like a checkpoint
ENGLISH = ("a an the of on in at with and or to from by for is are this that photo picture image painting drawing "
           "close up view front back left right top bottom big small large little red orange yellow green blue purple "
           "pink brown black white grey gray dark bright old new one two three many some man woman person people child "
           "dog cat horse bird cow sheep elephant bear zebra giraffe car bus truck train boat ship airplane bicycle "
           "motorcycle clock umbrella chair sofa couch bed table bench vase cup bottle bowl banana apple orange pizza "
           "cake flower flowers tree trees forest grass sand sky sea water river mountain city street road house "
           "church building statue liberty van gogh fruit fruits field room beach snow night day sun light background "
           "scene object circle square triangle shape siren drum beep rain dog barking bark sound sounds music").split()
SYMBOLS = list("0123456789") + ["-", "'", "!", "?", ":", ";", "(", ")", "/", "&"]


def english_tokenizer(out: Path, max_length: int = 77):
    """A CLIPTokenizer read from vocab.json + merges.txt written to `out`, as a downloaded checkpoint has them:
    BPE merges learned on a small English word list (conceptlab.toy.vocab.build), over every lowercase letter,
    digit and common sign, so any ordinary English prompt tokenizes (unlisted words as several pieces)."""
    from transformers import CLIPTokenizer

    out = Path(out)
    vocab.build(out, sorted(set(ENGLISH) | set(vocab.WORDS) | set(SYMBOLS)))
    return CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"), bos_token=vocab.BOS, eos_token=vocab.EOS,
                         unk_token=vocab.EOS, pad_token=vocab.EOS, model_max_length=max_length)


def _real_text_config(tok, **kw) -> CLIPTextConfig:
    return CLIPTextConfig(vocab_size=len(tok), hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=1,
                          num_attention_heads=2, max_position_embeddings=tok.model_max_length, projection_dim=WIDTH,
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **kw)


def _real_vae(sample_size: int) -> AutoencoderKL:
    """SD's VAE layout (four levels: 8x down, 4 latent channels, scaling 0.18215), narrow, and without the
    self-attention of its middle block (at 128x128 for 1024 px it alone doubles a decode on a CPU; conceptlab
    hooks the UNet, never the VAE)."""
    return AutoencoderKL(block_out_channels=(4, 4, 8, 8), in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         norm_num_groups=4, sample_size=sample_size, layers_per_block=1, mid_block_add_attention=False)


def sd21_base(tok, prediction_type: str = "epsilon", size: int = 512) -> StableDiffusionPipeline:
    """SD 2.1-base's shapes at its native 512 px (64x64 latents; self-attention at 64, 32, 16 and the 8x8 middle),
    narrow and random. prediction_type "v_prediction" gives an SD 2.1 (768-v)-like scheduler."""
    torch.manual_seed(0)
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1, prediction_type=prediction_type)
    return StableDiffusionPipeline(vae=_real_vae(size), text_encoder=CLIPTextModel(_real_text_config(tok)), tokenizer=tok,
                                   unet=sd2_unet(size // 8), scheduler=sched, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def sdxl_base(tok, size: int = 1024) -> StableDiffusionXLPipeline:
    """SDXL's shapes at its native 1024 px: 128x128 latents, no attention at the first level, attention at 64x64 and
    32x32, two text encoders (the second with projection), "text_time" conditions; narrow and random. Its
    scheduler is Euler, as SDXL ships (conceptlab.load turns it into DDIM)."""
    from diffusers import EulerDiscreteScheduler

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=size // 8, in_channels=4, out_channels=4, block_out_channels=(32, 32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=2 * WIDTH, attention_head_dim=(1, 2, 4), norm_num_groups=16, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8, transformer_layers_per_block=(1, 1, 2),
        projection_class_embeddings_input_dim=6 * 8 + WIDTH)
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                                   timestep_spacing="leading")
    return StableDiffusionXLPipeline(vae=_real_vae(size), text_encoder=CLIPTextModel(_real_text_config(tok)),
                                     text_encoder_2=CLIPTextModelWithProjection(_real_text_config(tok)),
                                     tokenizer=tok, tokenizer_2=tok, unet=unet, scheduler=sched)


def clip(tok):
    """A random CLIPModel (ViT-B/32's layout, narrow) with its processor, for CLIP scores on real-shape tiers."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(text_config=_real_text_config(tok).to_dict(), projection_dim=WIDTH,
                        vision_config=dict(hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=1,
                                           num_attention_heads=2, image_size=64, patch_size=16))
    processor = CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    return CLIPModel(config), processor


def owlv2(tok, vocab_dir: Path):
    """A random Owlv2ForObjectDetection (OWLv2's layout, narrow, 64 px input) with its processor."""
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2Processor
    try:
        from transformers import Owlv2ImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import Owlv2ImageProcessor as ImageProcessor

    torch.manual_seed(0)
    text = _real_text_config(tok).to_dict()
    text["max_position_embeddings"] = 16
    config = Owlv2Config(text_config=text, projection_dim=WIDTH,
                         vision_config=dict(hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=1,
                                            num_attention_heads=2, image_size=64, patch_size=16))
    small = english_tokenizer(vocab_dir, max_length=16)              # OWL's text queries are at most 16 tokens
    return Owlv2ForObjectDetection(config), Owlv2Processor(image_processor=ImageProcessor(size={"height": 64, "width": 64}),
                                                           tokenizer=small)


def sam():
    """A random SamModel (SAM's layout, narrow, 64 px input) with its processor, for concept regions."""
    from transformers import (SamConfig, SamImageProcessor, SamMaskDecoderConfig, SamModel, SamProcessor,
                              SamPromptEncoderConfig, SamVisionConfig)

    torch.manual_seed(0)
    vision = SamVisionConfig(hidden_size=WIDTH, output_channels=16, num_hidden_layers=1, num_attention_heads=2,
                             image_size=64, patch_size=16, mlp_dim=2 * WIDTH, global_attn_indexes=[0], window_size=2,
                             num_pos_feats=8)
    prompt = SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=16, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, mlp_dim=WIDTH,
                                   iou_head_hidden_dim=16)
    config = SamConfig(vision_config=vision.to_dict(), prompt_encoder_config=prompt.to_dict(),
                       mask_decoder_config=decoder.to_dict())
    images = SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
                               mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16})
    return SamModel(config), SamProcessor(image_processor=images)


def clap(vocab_dir: Path):
    """A random ClapModel (LAION CLAP's layout, narrow: 48 kHz clips of 10 s, a 256-wide Swin spectrogram) with
    its processor, for sound presence."""
    from transformers import ClapFeatureExtractor, ClapProcessor

    roberta, _ = file_tokenizers(vocab_dir)
    torch.manual_seed(0)
    model = _tiny_clap(len(roberta), spec_size=256, window_size=8, hidden_size=16, patch=4)
    features = ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad")    # as laion/clap-htsat-unfused
    return model, ClapProcessor(feature_extractor=features, tokenizer=roberta)


def lpips(folder: Path):
    """A random AlexNet backbone for LPIPS, saved as conceptlab.load_lpips reads a folder (alex.pth, LPIPS.json)."""
    import json

    import torchvision

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    features = torchvision.models.alexnet(weights=None).features.state_dict()
    torch.save({f"features.{k}": v for k, v in features.items()}, folder / "alex.pth")
    (folder / "LPIPS.json").write_text(json.dumps({"net": "alex"}))


REAL_SHAPES = {"sd21": "SD 2.1-base shaped, 512 px", "sd21-v": "SD 2.x v-prediction shaped, 512 px",
               "sdxl": "SDXL shaped, 1024 px", "audioldm2": "AudioLDM 2 shaped, 10.24 s", "clip": "CLIP shaped",
               "owlv2": "OWLv2 shaped", "sam": "SAM shaped", "clap": "CLAP shaped", "lpips": "LPIPS, random AlexNet"}


def save_real_shapes(out: Path, which=tuple(REAL_SHAPES)) -> dict[str, str]:
    """Write random-weight pipelines of the real architectures to `out/<name>` with save_pretrained, tokenizers
    from vocabulary files, and a CONCEPTLAB.json that marks their weights random: load them with
    conceptlab.load(folder). -> {name: folder}. Existing folders are reused."""
    import json

    from ..models import quiet_loading

    out = Path(out)
    tok = english_tokenizer(out / "_vocab")
    folders = {}
    for name in which:
        folder = out / name
        if not (folder / RANDOM_MARK).exists():
            parts = {"sd21": lambda: sd21_base(tok), "sd21-v": lambda: sd21_base(tok, "v_prediction"),
                     "sdxl": lambda: sdxl_base(tok), "audioldm2": lambda: audioldm2(out / "_vocab_audio", native=True),
                     "clip": lambda: (*clip(tok), tok), "owlv2": lambda: owlv2(tok, out / "_vocab_owl"),
                     "sam": sam, "clap": lambda: clap(out / "_vocab_clap"), "lpips": lambda: lpips(folder) or ()}[name]()
            with quiet_loading():
                for part in parts if isinstance(parts, tuple) else (parts,):
                    part.save_pretrained(folder)
            (folder / RANDOM_MARK).write_text(json.dumps({"random_weights": True, "shape": REAL_SHAPES[name]}))
        folders[name] = str(folder)
    return folders
