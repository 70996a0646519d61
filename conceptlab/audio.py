"""The audio front end: waveforms <-> log-mel spectrograms, as AudioLDM 2 frames them (METHODS.md, "Audio").

16 kHz, STFT n_fft 1024 and hop 160, 64 mel bands from 0 to 8000 Hz, the time axis padded to a multiple of 4;
back to a waveform with torchaudio's InverseMelScale and Griffin-Lim (deterministic: no random phase).

    spec = audio.log_mel(waveform)              # (B, 64, frames)
    wave = audio.waveform(spec, length=32000)   # (B, 32000)
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SAMPLE_RATE, N_FFT, HOP, N_MELS, F_MAX = 16000, 1024, 160, 64, 8000.0
FLOOR = 1e-5                                     # log(mel + FLOOR): silence is log(1e-5) = -11.5


def _transforms():
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS,
                                               f_min=0.0, f_max=F_MAX, power=2.0)
    inv = torchaudio.transforms.InverseMelScale(n_stft=N_FFT // 2 + 1, n_mels=N_MELS, sample_rate=SAMPLE_RATE,
                                                f_min=0.0, f_max=F_MAX)
    return mel, inv


def as_batch(waveform, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """A waveform (T,) or batch (B, T), numpy or torch, at 16 kHz -> float32 (B, T); anything else is refused."""
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"audio must be at {SAMPLE_RATE} Hz, got {sample_rate} Hz: resample it first "
                         "(torchaudio.functional.resample(wave, sample_rate, 16000))")
    w = torch.as_tensor(np.asarray(waveform, np.float32) if not isinstance(waveform, torch.Tensor) else waveform).float()
    w = w[None] if w.ndim == 1 else w
    if w.ndim != 2 or w.shape[1] < N_FFT:
        raise ValueError(f"a waveform must be (samples,) or (batch, samples) with at least {N_FFT} samples, "
                         f"got shape {tuple(torch.as_tensor(waveform).shape)}")
    if not torch.isfinite(w).all():
        raise ValueError("the waveform holds NaN or inf samples")
    return w


def log_mel(waveform, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """(T,) or (B, T) at 16 kHz -> log-mel (B, 64, frames), frames padded (with silence) to a multiple of 4."""
    mel, _ = _transforms()
    m = torch.log(mel(as_batch(waveform, sample_rate)) + FLOOR)
    pad = (-m.shape[-1]) % 4
    return F.pad(m, (0, pad), value=float(np.log(FLOOR)))


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
