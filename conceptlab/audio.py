"""The audio front end: waveforms <-> log-mel spectrograms, as AudioLDM 2 frames them (book/methods.md, "Sound").

16 kHz, STFT n_fft 1024 and hop 160, 64 mel bands from 0 to 8000 Hz, the time axis padded to a multiple of 4;
back to a waveform with torchaudio's InverseMelScale and Griffin-Lim (deterministic: no random phase).

    spec = audio.log_mel(waveform)              # (B, 64, frames)
    wave = audio.waveform(spec, length=32000)   # (B, 32000)

`AudioFrontEnd` is what a sound model's face (models.Model.audio) uses to turn waveforms into its spectrogram
images and back: toy-sounds' (log-mel / 11.5, Griffin-Lim) or AudioLDM 2's (log of the magnitude mel, HiFi-GAN).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

SAMPLE_RATE, N_FFT, HOP, N_MELS, F_MAX = 16000, 1024, 160, 64, 8000.0
FLOOR = 1e-5                                     # log(mel + FLOOR): silence is log(1e-5) = -11.5
LOG_MEL_SCALE = 11.5                             # toy-sounds' images: log-mel / 11.5, so silence is -1


def _transforms():
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS,
                                               f_min=0.0, f_max=F_MAX, power=2.0)
    inv = torchaudio.transforms.InverseMelScale(n_stft=N_FFT // 2 + 1, n_mels=N_MELS, sample_rate=SAMPLE_RATE,
                                                f_min=0.0, f_max=F_MAX)
    return mel, inv


PEAK_LIMIT = 10.0          # generated sound overshoots [-1, 1] (notebook 11: peaks of 2.4 and 2.7); PCM as floats is far above


def as_batch(waveform, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """A waveform (T,) or batch (B, T) at 16 kHz -> a new float32 (B, T) in [-1, 1]; anything else is refused.
    Float samples belong in [-1, 1] (a peak up to PEAK_LIMIT, a vocoder's overshoot, is accepted); integer
    samples are PCM (int16 is divided by 32768, int32 by 2**31)."""
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"audio must be at {SAMPLE_RATE} Hz, got {sample_rate} Hz: resample it first "
                         "(torchaudio.functional.resample(wave, sample_rate, 16000))")
    if not isinstance(waveform, (np.ndarray, torch.Tensor, list, tuple)):
        raise TypeError(f"a waveform must be a numpy array, a torch tensor or a list of samples, got "
                        f"{type(waveform).__name__}")
    a = waveform.detach().cpu().numpy() if isinstance(waveform, torch.Tensor) else np.asarray(waveform)
    if a.dtype.kind in "iu":                                   # PCM integers: full scale -> 1.0
        if a.dtype.kind == "u":
            raise ValueError(f"unsigned {a.dtype} samples are not PCM audio conceptlab reads: give int16 or floats")
        a = a.astype(np.float32) / float(2 ** (8 * a.dtype.itemsize - 1))
    elif a.dtype.kind != "f":
        raise ValueError(f"a waveform holds numbers, got {a.dtype} values")
    w = torch.from_numpy(np.array(a, dtype=np.float32))          # a copy: the input is never modified
    w = w[None] if w.ndim == 1 else w
    if w.ndim != 2 or w.shape[1] < N_FFT:
        raise ValueError(f"a waveform must be (samples,) or (batch, samples) with at least {N_FFT} samples, "
                         f"got shape {tuple(a.shape)}")
    if not torch.isfinite(w).all():
        raise ValueError("the waveform holds NaN or inf samples")
    peak = float(w.abs().max())
    if peak > PEAK_LIMIT:                                      # a vocoder's overshoot past 1 is fine; 100 is not
        raise ValueError(f"float samples belong in [-1, 1], got a peak of {peak:.3g}: divide by the peak "
                         "(wave / abs(wave).max()), or by 32768 for int16 PCM stored as floats")
    return w


def log_mel(waveform, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """(T,) or (B, T) at 16 kHz -> log-mel (B, 64, frames), frames padded (with silence) to a multiple of 4."""
    mel, _ = _transforms()
    m = torch.log(mel(as_batch(waveform, sample_rate)) + FLOOR)
    pad = (-m.shape[-1]) % 4
    return F.pad(m, (0, pad), value=float(np.log(FLOOR)))


def spectrogram_image(spec: torch.Tensor, frames: int) -> torch.Tensor:
    """Log-mel (B, 64, T) -> the 1-channel image a spectrogram diffusion model sees, laid out as AudioLDM 2
    lays it out (time as height): (B, 1, frames, 64), scaled by 1 / LOG_MEL_SCALE (silence at -1) and padded
    with silence (or cut) to `frames`."""
    x = spec.transpose(1, 2)[:, None] / LOG_MEL_SCALE
    return F.pad(x, (0, 0, 0, max(0, frames - x.shape[2])), value=float(np.log(FLOOR)) / LOG_MEL_SCALE)[:, :, :frames]


def image_spectrogram(x: torch.Tensor) -> torch.Tensor:
    """The inverse of spectrogram_image: (B, 1, frames, 64) -> log-mel (B, 64, frames)."""
    return x[:, 0].transpose(1, 2) * LOG_MEL_SCALE


def waveform(spec: torch.Tensor, length: int | None = None, n_iter: int = 64) -> torch.Tensor:
    """Log-mel (B, 64, frames) -> waveform (B, T) by InverseMelScale + Griffin-Lim (n_iter iterations, zero
    initial phase, so the same spectrogram always gives the same waveform); cut or padded to `length`."""
    import torchaudio

    if spec.ndim == 2:
        spec = spec[None]
    if spec.ndim != 3 or spec.shape[1] != N_MELS:
        raise ValueError(f"a log-mel spectrogram must be (batch, {N_MELS}, frames), got {tuple(spec.shape)}")
    _, inv = _transforms()
    power = inv((spec.float().exp() - FLOOR).clamp_min(0))                    # (B, 513, frames)
    gl = torchaudio.transforms.GriffinLim(n_fft=N_FFT, hop_length=HOP, power=2.0, n_iter=n_iter, rand_init=False)
    w = gl(power)
    if length is not None:
        w = F.pad(w, (0, max(0, length - w.shape[-1])))[..., :length]
    return w


def snr(reference, estimate) -> float:
    """Signal-to-noise ratio in dB of an estimate against its reference waveform (same length)."""
    r, e = as_batch(reference).flatten(), as_batch(estimate).flatten()
    n = min(len(r), len(e))
    r, e = r[:n], e[:n]
    return float(10 * torch.log10((r ** 2).sum() / ((r - e) ** 2).sum().clamp_min(1e-12)))


@dataclass(frozen=True)
class AudioFrontEnd:
    """How a sound model sees sound: waveforms of `length` samples at `sample_rate` <-> spectrogram images
    (B, 1, frames, n_mels), time as height as in AudioLDM 2. style "toy": log-mel (power 2) / log_mel_scale,
    back by Griffin-Lim; style "audioldm2": log(max(mel magnitude, 1e-5)) with Slaney mel filters (AudioLDM's
    framing: n_fft 1024, hop = the vocoder's upsampling, 0-8000 Hz), back by the pipeline's own vocoder."""
    style: str
    sample_rate: int
    frames: int
    n_mels: int
    length: int
    hop: int = HOP
    log_mel_scale: float = LOG_MEL_SCALE

    @property
    def seconds(self) -> float:
        return self.length / self.sample_rate

    @classmethod
    def for_toy(cls, sample_rate: int, frames: int, log_mel_scale: float, length: int) -> "AudioFrontEnd":
        return cls("toy", sample_rate, frames, N_MELS, length, HOP, log_mel_scale)

    @classmethod
    def for_audioldm2(cls, pipe, seconds: float | None = None) -> "AudioFrontEnd":
        """The pipeline's own framing; by default its own length (AudioLDM 2's 10.24 s), as pipe() computes it."""
        voc = pipe.vocoder.config
        hop = int(np.prod(voc.upsample_rates))
        f = pipe.vae_scale_factor
        frames = pipe.unet.config.sample_size * f if seconds is None else math.ceil(seconds * voc.sampling_rate / hop / f) * f
        length = frames * hop if seconds is None else int(seconds * voc.sampling_rate)
        return cls("audioldm2", int(voc.sampling_rate), int(frames), int(voc.model_in_dim), int(length), hop)

    def with_seconds(self, seconds: float) -> "AudioFrontEnd":
        """The same framing for clips of another length (frames rounded up to a multiple of 8)."""
        if not isinstance(seconds, (int, float)) or not 0 < seconds <= 60:
            raise ValueError(f"seconds must be a number in (0, 60], got {seconds!r}")
        frames = math.ceil(seconds * self.sample_rate / self.hop / 8) * 8
        return replace(self, frames=frames, length=int(seconds * self.sample_rate))

    def to_image(self, waveform) -> torch.Tensor:
        """(T,) or (B, T) at sample_rate, at most `length` samples (shorter is padded with silence) ->
        (B, 1, frames, n_mels). The input is never modified."""
        w = as_batch(waveform, self.sample_rate)
        if w.shape[-1] > self.length:
            raise ValueError(f"this model takes sounds of at most {self.length} samples ({self.seconds:g} s at "
                             f"{self.sample_rate} Hz), got {w.shape[-1]}: cut the waveform first")
        w = F.pad(w, (0, self.length - w.shape[-1]))
        if self.style == "toy":
            return spectrogram_image(log_mel(w, self.sample_rate), self.frames)
        import torchaudio

        mel = torchaudio.transforms.MelSpectrogram(self.sample_rate, n_fft=N_FFT, hop_length=self.hop, n_mels=self.n_mels,
                                                   f_min=0.0, f_max=F_MAX, power=1.0, norm="slaney", mel_scale="slaney")
        m = torch.log(mel(w).clamp_min(FLOOR)).transpose(1, 2)[:, None]                       # (B, 1, T', n_mels)
        return F.pad(m, (0, 0, 0, max(0, self.frames - m.shape[2])), value=float(np.log(FLOOR)))[:, :, :self.frames]

    def to_waveform(self, image: torch.Tensor, pipe=None) -> torch.Tensor:
        """(B, 1, frames, n_mels) -> waveform (B, length): Griffin-Lim (toy) or the pipeline's vocoder."""
        if self.style == "toy":
            return waveform(image_spectrogram(image), length=self.length)
        w = pipe.mel_spectrogram_to_waveform(image.to(pipe.vocoder.dtype))
        return F.pad(w, (0, max(0, self.length - w.shape[-1])))[..., :self.length]
