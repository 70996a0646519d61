"""One face over a diffusers pipeline, so that every method is written once for every backbone.

    model = conceptlab.load("toy-shapes")            # the embedded model (offline, CPU, seconds)
    model = conceptlab.load("stabilityai/stable-diffusion-2-1-base")   # a real checkpoint you have
    image = model.generate("a red circle on grass", steps=50, guidance=5.0, seed=0)
    sound = conceptlab.load("toy-sounds")            # the embedded sound model (or "cvssp/audioldm2")
    wave, sr = sound.generate("a siren and rain")    # a waveform (T,) and its sample rate

A sound model is the same face on spectrogram images (time x mel bands): `encode` takes a waveform and
`decode` gives one back (Griffin-Lim for toy-sounds, the HiFi-GAN vocoder for AudioLDM 2), so inversion and
concept scaling run on sounds unchanged.

The face: `encode_text` (the null prompt "" included), `eps(z, t, cond)` for a batch of conditions in
one UNet forward, `encode` an image to a latent and `decode` back, the scheduler's `timesteps` and
`alphas_cumprod`, and `pipe`, the diffusers pipeline itself.
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from . import ddim
from .checks import as_dtype, as_number, as_seed
from .ddim import check_steps, predict_x0
from .images import to_pil, to_tensor

EMBEDDED = Path(__file__).parent / "toy" / "weights"
EMBEDDED_NAMES = ("toy-shapes", "toy-sounds")
TRAIN_COMMAND = {"toy-shapes": "python -m conceptlab.toy.train shapes", "toy-clip": "python -m conceptlab.toy.train shapes --stage clip",
                 "toy-sounds": "python -m conceptlab.toy.train sounds --vae-steps 700 --unet-steps 4000 --batch 32` then "
                               "`python -m conceptlab.toy.train sounds --stage decoder --decoder-steps 1500 --band-weight 1.0"}


@contextlib.contextmanager
def quiet_loading():
    """Loading without progress bars or advice about optional packages (accelerate, torchvision), so that
    notebooks show the model, not the loader's chatter. Errors still raise; levels are restored after."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    levels = (dlog.get_verbosity(), tlog.get_verbosity())
    bars = (dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled())
    dlog.set_verbosity_error(); tlog.set_verbosity_error()
    dlog.disable_progress_bar(); tlog.disable_progress_bar()
    try:
        yield
    finally:
        dlog.set_verbosity(levels[0]); tlog.set_verbosity(levels[1])
        if bars[0]:
            dlog.enable_progress_bar()
        if bars[1]:
            tlog.enable_progress_bar()


RANDOM_MARK = "CONCEPTLAB.json"       # in a saved folder: its weights are random (conceptlab.toy.tiny's twins)


def has_random_weights(path) -> bool:
    """Whether a local folder is marked as holding random weights (plumbing only, no meaningful output)."""
    mark = Path(path, RANDOM_MARK)
    return mark.exists() and json.loads(mark.read_text()).get("random_weights", False)


class ModelNotAvailableError(FileNotFoundError):
    """The weights are not on this machine and cannot be fetched from here."""


def resolve(name: str, embedded: tuple[str, ...]) -> tuple[str, bool]:
    """-> (path or hub id, is_local). Embedded names map to the package's weights folder."""
    if not isinstance(name, (str, os.PathLike)) or not str(name).strip():
        raise ValueError(f"model name must be a non-empty string such as {embedded[0]!r} or a folder, got {name!r}")
    name = str(name)
    if name in embedded:
        path = EMBEDDED / name
        if not (path / ("model_index.json" if name != "toy-clip" else "config.json")).exists():
            raise ModelNotAvailableError(
                f"the embedded model {name!r} is missing from this installation (expected in {path}). "
                f"Rebuild it with `{TRAIN_COMMAND[name]}` or reinstall conceptlab from a full clone.")
        return str(path), True
    if name.startswith("toy-"):
        raise ValueError(f"unknown embedded model {name!r}; the embedded models are {embedded}")
    if Path(name).exists():
        return name, True
    if looks_like_a_path(name):
        raise FileNotFoundError(f"there is no folder {name!r} (looked in {Path(name).expanduser().resolve()}): "
                                "check the path; a hub id looks like 'org/name'")
    return name, False


def looks_like_a_path(name: str) -> bool:
    """A name that can only be a local path: it starts with '.', '/' or '~', ends with a separator, or has more
    separators than a hub id's one ('org/name')."""
    return name.startswith((".", "/", "~")) or name.endswith(("/", os.sep)) or name.count("/") > 1 or "\\" in name


def from_pretrained(cls, name: str, is_local: bool, **kw):
    """Load with diffusers/transformers: a local folder, the local hub cache, then (unless offline) the hub.
    Never falls back to another model; a missing model raises ModelNotAvailableError saying how to fetch it."""
    if is_local:
        return cls.from_pretrained(name, **kw)
    try:
        return cls.from_pretrained(name, local_files_only=True, **kw)
    except Exception as cached_error:                  # not in the cache: try the hub unless told not to
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
            reason = f"it is not in the local Hugging Face cache and HF_HUB_OFFLINE is set ({cached_error})"
        else:
            try:
                return cls.from_pretrained(name, **kw)
            except Exception as hub_error:
                reason = f"it is not in the local cache and the hub could not be reached ({type(hub_error).__name__}: {hub_error})"
    raise ModelNotAvailableError(
        f"cannot load model {name!r}: {reason}. On a machine with internet run "
        f"`hf download {name}` (or `huggingface-cli download {name}`), then copy ~/.cache/huggingface here "
        f"or pass the downloaded folder: conceptlab.load('/path/to/folder'). "
        f"The embedded models need no download: conceptlab.load('toy-shapes').")


@dataclass
class Condition:
    """Text conditioning for a batch of prompts: `hidden` (B, L, D) for the UNet's cross-attention;
    SDXL adds `pooled` (B, 1280) and `time_ids` (B, 6); AudioLDM 2's second stream is `hidden_2` (B, L2, D2),
    the T5 states, with their attention mask `mask_2` (B, L2) (`hidden` is then GPT-2's 8 generated vectors)."""
    hidden: torch.Tensor
    pooled: torch.Tensor | None = None
    time_ids: torch.Tensor | None = None
    hidden_2: torch.Tensor | None = None
    mask_2: torch.Tensor | None = None

    def __len__(self):
        return self.hidden.shape[0]

    @staticmethod
    def cat(conds: list["Condition"]) -> "Condition":
        def c(xs):
            return None if xs[0] is None else torch.cat(xs)
        hidden_2, mask_2 = [x.hidden_2 for x in conds], [x.mask_2 for x in conds]
        if hidden_2[0] is not None:            # T5 pads each batch to its longest prompt: pad to a common length
            n = max(h.shape[1] for h in hidden_2)
            hidden_2 = [torch.nn.functional.pad(h, (0, 0, 0, n - h.shape[1])) for h in hidden_2]
            mask_2 = [torch.nn.functional.pad(m, (0, n - m.shape[1])) for m in mask_2]
        return Condition(c([x.hidden for x in conds]), c([x.pooled for x in conds]), c([x.time_ids for x in conds]),
                         c(hidden_2), c(mask_2))

    def repeat(self, n: int) -> "Condition":
        def r(x):
            return None if x is None else x.repeat_interleave(n, 0)
        return Condition(r(self.hidden), r(self.pooled), r(self.time_ids), r(self.hidden_2), r(self.mask_2))


class Model:
    """The face over one diffusers pipeline (SD 1.x/2.x, SDXL, AudioLDM 2, or toy-sounds' spectrogram SD).
    Build it with `conceptlab.load`. `audio` is None for image models; for sound models it is an AudioFrontEnd."""

    def __init__(self, pipe, name: str, toy: bool = False, audio=None, random_weights: bool = False,
                 training: dict | None = None):
        from diffusers import AudioLDM2Pipeline, DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

        if isinstance(pipe, StableDiffusionXLPipeline):
            self.kind = "sdxl"
        elif isinstance(pipe, StableDiffusionPipeline):
            self.kind = "sd"
        elif isinstance(pipe, AudioLDM2Pipeline):
            self.kind = "audioldm2"
        else:
            raise ValueError(
                f"{type(pipe).__name__} is not supported: conceptlab's model face covers StableDiffusionPipeline "
                "(SD 1.x/2.x, toy-shapes, toy-sounds), StableDiffusionXLPipeline and AudioLDM2Pipeline.")
        if not isinstance(pipe.scheduler, DDIMScheduler):   # every method here steps with DDIM
            raise ValueError(f"conceptlab steps with DDIM but this pipeline has {type(pipe.scheduler).__name__}: set "
                             "pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config) (conceptlab.load does)")
        if pipe.scheduler.config.get("prediction_type", "epsilon") not in ddim.PREDICTION_TYPES:
            raise ValueError(f"this checkpoint's scheduler predicts {pipe.scheduler.config.prediction_type!r}; conceptlab "
                             f"handles {ddim.PREDICTION_TYPES} (every method works in eps; v is converted exactly)")
        if self.kind == "audioldm2" and audio is None:
            from .audio import AudioFrontEnd
            audio = AudioFrontEnd.for_audioldm2(pipe)
        self.pipe, self.name, self.toy, self.audio = pipe, name, toy, audio    # toy: embedded, closed vocabulary
        self.random_weights = random_weights             # a random-weight pipeline of a real shape (tests, CI)
        self.training = training                         # an embedded model's recipe (TRAINING.json), else None
        for part in pipe.components.values():            # a pipeline built in code is in train mode: no dropout here
            if isinstance(part, torch.nn.Module):
                part.eval()
        self._null: Condition | None = None

    # ------------------------------------------------------------------------------ properties
    unet = property(lambda self: self.pipe.unet)
    vae = property(lambda self: self.pipe.vae)
    tokenizer = property(lambda self: self.pipe.tokenizer)
    text_encoder = property(lambda self: self.pipe.text_encoder)
    scheduler = property(lambda self: self.pipe.scheduler)
    device = property(lambda self: self.pipe.unet.device)
    dtype = property(lambda self: self.pipe.unet.dtype)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) in pixels of the images the model makes and encodes; for a sound model, of its
        spectrogram image: (frames, mel bands)."""
        if self.audio is not None:
            return (self.audio.frames, self.audio.n_mels)
        s = self.unet.config.sample_size
        h, w = (s, s) if isinstance(s, int) else s
        return (h * self.pipe.vae_scale_factor, w * self.pipe.vae_scale_factor)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        h, w = self.image_size
        f = self.pipe.vae_scale_factor
        return (self.unet.config.in_channels, h // f, w // f)

    @property
    def tier(self) -> str:
        """"toy" (an embedded model: the world's ground truth applies), "random" (a random-weight pipeline of a
        real architecture: plumbing only, nothing to assert) or "real" (a trained checkpoint)."""
        return "toy" if self.toy else ("random" if self.random_weights else "real")

    @property
    def is_audio(self) -> bool:
        return self.audio is not None

    @property
    def prediction_type(self) -> str:
        """What the UNet predicts: "epsilon" or "v_prediction" (`eps` always returns the noise)."""
        return self.scheduler.config.get("prediction_type", "epsilon")

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """(1000,) cumulative products of (1 - beta): alpha-bar_t of DDPM."""
        return self.scheduler.alphas_cumprod

    def alpha_pairs(self, timesteps: torch.Tensor) -> list[tuple[float, float]]:
        """For each sampling step i, (abar at t_i, abar at the next cleaner timestep); the cleanest step goes to
        the scheduler's final alpha (abar_0 here, as SD's set_alpha_to_one=False)."""
        return ddim.alpha_pairs(self.alphas_cumprod, timesteps, self.scheduler.final_alpha_cumprod)

    def timesteps(self, steps: int) -> torch.Tensor:
        """The DDIM timesteps of an N-step run, noisiest first: (N,) long."""
        self.scheduler.set_timesteps(check_steps(steps))
        return self.scheduler.timesteps.clone()

    def __repr__(self):
        n = sum(p.numel() for p in self.unet.parameters()) / 1e6
        if self.is_audio:
            return (f"Model({self.name!r}, kind={self.kind}, sound={self.audio.seconds:g} s at {self.audio.sample_rate} Hz, "
                    f"spectrogram={self.image_size}, unet={n:.1f}M params)")
        return f"Model({self.name!r}, kind={self.kind}, image={self.image_size}, unet={n:.1f}M params)"

    # ------------------------------------------------------------------------------------ text
    def check_prompt(self, prompt: str, allow_empty: bool = False) -> str:
        """Prompts are checked at the door: a string, not empty (unless allowed), not over the
        tokenizer's length, and (on the toy models) made only of words the model knows."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
        if not prompt.strip() and not allow_empty:
            raise ValueError("prompt is empty: say what to generate, e.g. 'a red circle on grass' "
                             "(the null prompt '' is used for guidance automatically)")
        for tok in [self.tokenizer] + ([self.pipe.tokenizer_2] if self.kind in ("sdxl", "audioldm2") else []):
            ids = tok(prompt).input_ids
            if len(ids) > tok.model_max_length:
                raise ValueError(f"prompt is {len(ids)} tokens long but {self.name} reads at most "
                                 f"{tok.model_max_length} (start and end included): shorten it")
        if self.toy:                                    # every known word is one token ending in </w>
            added = self.tokenizer.get_added_vocab()    # or a learned token such as "<c0>"
            from .toy.vocab import PUNCTUATION, SOUND_WORDS, WORDS

            words = set(WORDS) | set(SOUND_WORDS) | set(PUNCTUATION)   # BPE pieces such as "ack" are not words
            one_token = lambda w: (len(ids := self.tokenizer(w, add_special_tokens=False).input_ids) == 1  # noqa: E731
                                   and self.tokenizer.convert_ids_to_tokens(ids)[0] == w + "</w>")
            unknown = [w for w in prompt.lower().replace(",", " , ").replace(".", " . ").split()
                       if w not in added and not (w in words and one_token(w))]
            if unknown:
                known = sorted(w for w in words if w.isalpha() and one_token(w))
                raise ValueError(f"{self.name} does not know the word(s) {unknown}; it knows: {', '.join(known)}")
        return prompt

    @torch.no_grad()
    def encode_text(self, prompts: str | list[str]) -> Condition:
        """Encode prompts (the null prompt "" is allowed) -> Condition with hidden (B, L, D)."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        for p in prompts:
            self.check_prompt(p, allow_empty=True)
        if self.kind == "sd":
            hidden, _ = self.pipe.encode_prompt(prompts, self.device, 1, False)
            return Condition(hidden)
        if self.kind == "audioldm2":                    # the whole chain, CLAP + T5 -> GPT-2, on every prompt
            t5, mask, generated = self.pipe.encode_prompt(prompts, self.device, 1, False)
            return Condition(generated, hidden_2=t5, mask_2=mask)
        hidden, _, pooled, _ = self.pipe.encode_prompt(prompts, device=self.device, do_classifier_free_guidance=False)
        h, w = self.image_size
        tid = torch.tensor([[h, w, 0, 0, h, w]], dtype=hidden.dtype, device=self.device).repeat(len(prompts), 1)
        return Condition(hidden, pooled, tid)

    def null(self) -> Condition:
        """The model's real encoding of "" (never zeros), cached. (B=1)"""
        if self._null is None:
            self._null = self.encode_text("")
        return self._null

    # ------------------------------------------------------------------------------------ unet
    def eps(self, z: torch.Tensor, t, cond: Condition, cross_attention_kwargs=None) -> torch.Tensor:
        """Noise prediction eps_theta(z_t, t, c) for a batch: z (B, C, h, w); cond of batch B, or of 1
        (broadcast). Several conditions for one latent: pass z.expand(B, ...) with a B-prompt cond."""
        if z.ndim != 4 or tuple(z.shape[1:]) != self.latent_shape:
            raise ValueError(f"latent must be (B, {', '.join(map(str, self.latent_shape))}), got {tuple(z.shape)}")
        if len(cond) == 1 and z.shape[0] > 1:
            cond = cond.repeat(z.shape[0])
        if len(cond) != z.shape[0]:
            raise ValueError(f"{z.shape[0]} latents but {len(cond)} conditions: give one condition per latent, or one for all")
        t = torch.as_tensor(t, device=z.device)
        if self.kind == "audioldm2":
            out = self.unet(z, t, encoder_hidden_states=cond.hidden, encoder_hidden_states_1=cond.hidden_2,
                            encoder_attention_mask_1=cond.mask_2).sample
        else:
            added = {"text_embeds": cond.pooled, "time_ids": cond.time_ids} if self.kind == "sdxl" else None
            out = self.unet(z, t, encoder_hidden_states=cond.hidden, added_cond_kwargs=added,
                            cross_attention_kwargs=cross_attention_kwargs).sample
        return ddim.as_eps(out, z, t, self.alphas_cumprod, self.prediction_type)   # v: the noise it stands for

    def predict_x0(self, z: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        """The predicted clean latent at timestep t (see `predict_x0`)."""
        return predict_x0(z, eps, self.alphas_cumprod[int(torch.as_tensor(t).flatten()[0])])

    # ------------------------------------------------------------------------------------- vae
    @torch.no_grad()
    def encode(self, image, sample: bool = False, seed: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Image (PIL, uint8 array, or tensor in [-1, 1]) -> scaled latent (B, C, h, w): the posterior's
        mean (or a seeded sample; `generator`, when given, is drawn from instead of a fresh one seeded by
        `seed`) times the VAE's scaling factor. A sound model takes a waveform instead ((T,) or (B, T) at its
        sample rate, numpy or torch, or a sounds-world Mixture)."""
        seed = as_seed(seed)
        if self.is_audio:
            if isinstance(image, Image.Image):
                raise TypeError(f"{self.name} is a sound model: give a waveform ((T,) or (B, T) at "
                                f"{self.audio.sample_rate} Hz) or a sounds-world Mixture, not a picture")
            rate = getattr(image, "sample_rate", self.audio.sample_rate)      # a Mixture says its own rate
            if rate != self.audio.sample_rate:
                raise ValueError(f"this sound is at {rate} Hz but {self.name} takes {self.audio.sample_rate} Hz: "
                                 f"resample it first (torchaudio.functional.resample)")
            x = self.audio.to_image(getattr(image, "waveform", image)).to(self.device, self.vae.dtype)
        else:
            x = to_tensor(image, self.image_size).to(self.device, self.vae.dtype)
        dists = [self.vae.encode(part).latent_dist for part in self._vae_parts(x)]
        mean = torch.cat([d.mean for d in dists])
        if sample:                                   # one draw over the whole batch, as the VAE's own sample()
            from diffusers.utils.torch_utils import randn_tensor

            std = torch.cat([d.std for d in dists])
            gen = torch.Generator(mean.device).manual_seed(seed) if generator is None else generator
            noise = randn_tensor(mean.shape, generator=gen, device=mean.device, dtype=mean.dtype)
            mean = mean + std * noise
        return (mean * self.vae.config.scaling_factor).to(self.dtype)

    def _vae_parts(self, x: torch.Tensor) -> list[torch.Tensor]:
        """A batch as the VAE takes it: whole on toy models; one item at a time on real ones, as diffusers'
        enable_vae_slicing does (a VAE decode at 1024 px holds about 3 GiB per image: benchmarks/gpu_cost.py)."""
        return [x] if self.toy else list(x.split(1))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latent (B, C, h, w) -> image tensor (B, 3, H, W) in [-1, 1]; a sound model gives the waveform
        (B, T) (see `decode_spectrogram` for the spectrogram image)."""
        if self.is_audio:
            return self.audio.to_waveform(self.decode_spectrogram(z), self.pipe)
        return self.decode_spectrogram(z).clamp(-1, 1)

    @torch.no_grad()
    def decode_spectrogram(self, z: torch.Tensor) -> torch.Tensor:
        """The VAE's raw output for a latent (B, C, h, w): a sound model's spectrogram image (B, 1, frames, mels),
        an image model's picture before clamping."""
        z = z.to(self.vae.dtype) / self.vae.config.scaling_factor
        return torch.cat([self.vae.decode(part).sample for part in self._vae_parts(z)]).float()

    def to_pil(self, x: torch.Tensor):
        return to_pil(x)

    # -------------------------------------------------------------------------------- generate
    @torch.no_grad()
    def generate(self, prompt: str | list[str], steps: int = 50, guidance: float = 5.0, seed: int = 0,
                 negative_prompt: str | None = None, output: str = "pil", callback_on_step_end=None):
        """Text to image with the diffusers pipeline and DDIM (eta 0). One prompt -> one PIL image;
        a list -> a list. output="pt" returns a tensor (B, 3, H, W) in [-1, 1]. Same seed, same image.
        callback_on_step_end goes to the pipeline (e.g. a TrajectoryRecorder's `callback`)."""
        if not isinstance(prompt, (str, list, tuple)) or (not isinstance(prompt, str) and not prompt):
            raise TypeError(f"prompt must be a string or a non-empty list of strings, got {prompt!r}")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        for p in prompts:
            self.check_prompt(p)
        steps = check_steps(steps)
        guidance = as_number(guidance, "guidance", "1 = no guidance, 5 = the default", 0, 50)
        seed = as_seed(seed)
        if negative_prompt is not None:
            self.check_prompt(negative_prompt, allow_empty=True)
        if self.is_audio:
            return self._generate_sound(prompts, steps, guidance, seed, negative_prompt, isinstance(prompt, str))
        h, w = self.image_size
        out = self.pipe(prompts, num_inference_steps=steps, guidance_scale=float(guidance), height=h, width=w,
                        negative_prompt=None if negative_prompt is None else [negative_prompt] * len(prompts),
                        generator=torch.Generator().manual_seed(seed), output_type="pt",
                        callback_on_step_end=callback_on_step_end)
        x = out.images * 2 - 1                                  # pipeline gives [0, 1]
        if output == "pt":
            return x
        images = to_pil(x)
        return images[0] if isinstance(prompt, str) else images


    def _generate_sound(self, prompts, steps, guidance, seed, negative_prompt, single):
        """Sound models: seeded noise, DDIM with classifier-free guidance (conceptlab's own sampler, the same
        for toy-sounds and AudioLDM 2), then decode -> (waveform (T,) or (B, T), sample rate)."""
        z = torch.randn((len(prompts), *self.latent_shape), generator=torch.Generator().manual_seed(seed))
        null = self.null() if negative_prompt is None else self.encode_text(negative_prompt)
        z0 = self.sample(z.to(self.device, self.dtype), self.encode_text(prompts), steps, float(guidance), null=null)
        wave = self.decode(z0)
        return (wave[0] if single else wave), self.audio.sample_rate

    @torch.no_grad()
    def sample(self, z_T: torch.Tensor, cond: Condition, steps: int, guidance: float = 1.0,
               null: Condition | None = None, report=None, noises=None) -> torch.Tensor:
        """Deterministic DDIM sampling from z_T (B, C, h, w) with classifier-free guidance
        eps = eps_null + guidance (eps_c - eps_null) (guidance 1: the conditional prediction alone).
        `report(i, t, z, eps, branches)` is called once per step (inversion.sample passes the hooks' one).
        noises(i) -> (B, C, h, w) or None: a stochastic DDPM step with that noise map instead (edit-friendly
        inversions). Returns the clean latent (B, C, h, w)."""
        timesteps = self.timesteps(steps)
        z = z_T
        null = self.null() if null is None else null
        for i, ((abar_t, abar_s), t) in enumerate(zip(self.alpha_pairs(timesteps), timesteps)):
            if guidance == 1.0:
                eps = self.eps(z, t, cond)
                branches = {"cond": eps}
            else:                                          # both branches in one batched forward
                both = self.eps(torch.cat([z, z]), t, Condition.cat([null.repeat(len(z)) if len(null) == 1 else null,
                                                                      cond.repeat(len(z)) if len(cond) == 1 else cond]))
                e_null, e_c = both.chunk(2)
                eps = e_null + guidance * (e_c - e_null)
                branches = {"uncond": e_null, "cond": e_c}
            if report is not None:
                report(i, t, z, eps, branches)
            noise = None if noises is None else noises(i)
            z = ddim.ddim_step(z, eps, abar_t, abar_s) if noise is None else ddim.ddpm_step(z, eps, abar_t, abar_s, noise)
        return z


DDIM_FOR_LATENTS = {"clip_sample": False, "set_alpha_to_one": False, "thresholding": False}


def as_device(device) -> torch.device:
    """"cpu", "cuda", "cuda:1", "mps" or a torch.device, checked against this machine."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda', or a torch.device, got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {device!r}: use 'cpu', 'cuda' (or 'cuda:0', 'cuda:1', ...) or 'mps'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked but CUDA is not available on this machine: use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} was asked but this machine has {torch.cuda.device_count()} CUDA "
                             f"device(s): use 'cuda:0' .. 'cuda:{torch.cuda.device_count() - 1}'")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} was asked but MPS is not available on this machine: use device='cpu'")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {device!r} is not supported: use 'cpu', 'cuda' or 'mps'")
    return dev


def ddim_scheduler(scheduler):
    """The checkpoint's scheduler as a DDIMScheduler with the checkpoint's own noise schedule (betas, number
    of training steps, prediction type, timestep spacing, steps offset). Keys a non-DDIM config lacks are set
    for latent diffusion, not taken from DDIM's defaults: clip_sample False (DDIM's default, True, would clip
    latents to [-1, 1]), set_alpha_to_one False (SD's convention: the last step ends at abar_0), no
    thresholding. A DDIMScheduler is kept as it is, except that latents are never clipped."""
    from diffusers import DDIMScheduler

    config = dict(scheduler.config)
    if isinstance(scheduler, DDIMScheduler):
        if config.get("clip_sample") or config.get("thresholding"):
            return DDIMScheduler.from_config({**config, "clip_sample": False, "thresholding": False})
        return scheduler
    return DDIMScheduler.from_config({**config, **DDIM_FOR_LATENTS})


def load(name: str = "toy-shapes", device: str | torch.device = "cpu", dtype: torch.dtype | str = torch.float32) -> Model:
    """Load a model by name: "toy-shapes" (embedded), a diffusers model id, or a local folder.
    Returns the same `Model` face for every backbone.

    device: "cpu", "cuda", "cuda:1", "mps". dtype: torch.float32 (default), torch.float16 or torch.bfloat16
    (or their names). In half precision the text encoders and UNet run in that dtype; an SDXL VAE whose config
    says `force_upcast` (SDXL's does: it overflows in float16) is kept in float32, as diffusers does."""
    # 1. Check inputs
    dev, dt = as_device(device), as_dtype(dtype)
    # 2. Load the pipeline
    with quiet_loading():
        from diffusers import DiffusionPipeline, StableDiffusionXLPipeline

        path, local = resolve(name, EMBEDDED_NAMES)
        check_folder(path, local)
        try:
            pipe = from_pretrained(DiffusionPipeline, path, local, dtype=dt)
        except ModelNotAvailableError:
            raise
        except Exception as error:
            if not local:
                raise
            raise ValueError(f"{path} is a folder but diffusers could not load a pipeline from it "
                             f"({type(error).__name__}: {error}). Pass the folder a pipeline was saved to with "
                             f"`save_pretrained` or `hf download` (it holds model_index.json and one subfolder per "
                             f"part); a CLIP model goes to conceptlab.load_clip.") from error
    # 3. Step with DDIM on the checkpoint's own noise schedule
    pipe.scheduler = ddim_scheduler(pipe.scheduler)
    pipe.set_progress_bar_config(disable=True)
    # 4. Device and dtype (SDXL's VAE stays in float32 in half precision)
    pipe = pipe.to(dev)
    if dt != torch.float32 and isinstance(pipe, StableDiffusionXLPipeline) and pipe.vae.config.get("force_upcast", False):
        pipe.vae.to(torch.float32)
    # 5. The embedded models' own front ends
    training = training_recipe(path)
    front = None
    if training is not None and "audio" in training:                     # toy-sounds: a spectrogram model
        from .audio import AudioFrontEnd
        front = AudioFrontEnd.for_toy(**training["audio"])
    return Model(pipe, str(name), toy=training is not None, audio=front, random_weights=has_random_weights(path),
                 training=training)


def training_recipe(name: str) -> dict | None:
    """An embedded model's recipe, the TRAINING.json conceptlab.toy.train writes, by name or folder without
    loading the model; None for any other model."""
    path, local = resolve(name, EMBEDDED_NAMES)
    recipe = Path(path, "TRAINING.json")
    return json.loads(recipe.read_text()) if local and recipe.exists() else None


def weights_revision(name: str | None) -> str | None:
    """What identifies the weights behind a model name (so that rows made by other weights, the embedded model
    retrained or another snapshot, can be told apart): for a folder (the embedded models included) a digest of
    its weight files (names, sizes, first MiB); for a hub id the cached snapshot's commit; else None."""
    import hashlib

    if not name:
        return None
    try:
        path, local = resolve(name, EMBEDDED_NAMES + ("toy-clip",))
    except (ValueError, FileNotFoundError):
        return None
    if not local:
        try:
            from huggingface_hub import snapshot_download
            return Path(snapshot_download(name, local_files_only=True)).name
        except Exception:
            return None
    digest = hashlib.sha256()
    for f in sorted(Path(path).rglob("*")):
        if f.suffix in (".safetensors", ".bin", ".pt", ".ckpt") and f.is_file():
            digest.update(f"{f.relative_to(path)}:{f.stat().st_size}:".encode())
            with f.open("rb") as handle:
                digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]


def check_folder(path: str, local: bool):
    """A local path must be a folder holding a readable model_index.json (a saved diffusers pipeline)."""
    if not local:
        return
    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"{path} is a file, not a folder: conceptlab.load takes a pipeline folder (with "
                         f"model_index.json), an embedded name such as 'toy-shapes', or a hub id")
    index = p / "model_index.json"
    if not index.exists():
        hint = (" It holds a config.json: a single model (CLIP?) goes to conceptlab.load_clip."
                if (p / "config.json").exists() else "")
        raise ValueError(f"{path} has no model_index.json, so it is not a saved diffusers pipeline.{hint} Save one "
                         f"with pipe.save_pretrained(folder) or download it with `hf download <id> --local-dir folder`.")
    try:
        meta = json.loads(index.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{index} is not valid JSON ({error}): the download may be incomplete; fetch it again") from None
    cls = meta.get("_class_name") if isinstance(meta, dict) else None
    supported = ("StableDiffusionPipeline", "StableDiffusionXLPipeline", "AudioLDM2Pipeline")
    if cls not in supported:
        raise ValueError(f"{index} names the pipeline class {cls!r}; conceptlab supports {', '.join(supported)}")
