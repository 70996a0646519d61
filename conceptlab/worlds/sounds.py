"""The sounds world: seeded mixtures of synthetic sound events that know their own ground truth.

A mixture is 2 seconds at 16 kHz of one to three events from five kinds, each with its waveform, its
caption phrase and its onset; its caption names them ("a siren and rain"). Each kind lives in its own
frequency band, so "how much siren is left?" has an exact answer on any waveform, generated or decoded:
`presence` measures the energy in the kind's band against the energy the clean source had there.

    m = sounds.mixture("heldout", 0)
    m.waveform, m.sample_rate, m.caption, [s.kind for s in m.sources]
    sounds.energy(m.waveform, "siren")          # energy in the siren's band
    sounds.presence(edited, m, "siren")         # share of the siren's energy still there (1 = all)

Splits are fixed seed streams: "train" and "heldout" never share a mixture.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

SAMPLE_RATE = 16000
SECONDS = 2.0
LENGTH = int(SAMPLE_RATE * SECONDS)
N_FFT, HOP = 1024, 160                           # AudioLDM 2's STFT (book/methods.md, "Sound")
# kind -> (caption phrase, frequency band in Hz where its energy lives)
KINDS = {
    "hum": ("a hum", (70.0, 260.0)),
    "drum": ("a drum", (300.0, 650.0)),
    "beep": ("a beep", (850.0, 1250.0)),
    "siren": ("a siren", (1450.0, 2900.0)),
    "rain": ("rain", (3800.0, 7200.0)),
}
SPLITS = {"train": 0, "heldout": 1}


@dataclass
class Source:
    """One event: its kind, its waveform (LENGTH,) float32 alone, its onset in seconds and its gain."""
    kind: str
    waveform: np.ndarray
    onset: float
    gain: float

    @property
    def phrase(self) -> str:
        return KINDS[self.kind][0]


@dataclass
class Mixture:
    """A mixture: waveform (LENGTH,) float32 in [-1, 1], its sources and caption."""
    waveform: np.ndarray
    sources: list[Source] = field(default_factory=list)
    sample_rate: int = SAMPLE_RATE

    @property
    def kinds(self) -> list[str]:
        return [s.kind for s in self.sources]

    @property
    def caption(self) -> str:
        return caption_for(self.kinds)


def caption_for(kinds: list[str]) -> str:
    """The caption naming these kinds in order: "a siren", "a siren and rain", "a hum, a siren and rain"."""
    phrases = [KINDS[k][0] for k in kinds]
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _rng(split: str, index: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; the splits are {tuple(SPLITS)}")
    if not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}")
    return np.random.default_rng([SPLITS[split], 7, int(index)])


def _envelope(t: np.ndarray, onset: float, length: float) -> np.ndarray:
    """1 between onset and onset + length, with 10 ms raised-cosine ramps."""
    ramp = 0.01
    up = np.clip((t - onset) / ramp, 0, 1)
    down = np.clip((onset + length - t) / ramp, 0, 1)
    return (0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down))).astype(np.float32)


def _bandpass_noise(rng, n: int, band: tuple[float, float]) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spec[(f < band[0]) | (f > band[1])] = 0
    x = np.fft.irfft(spec, n)
    return x / (np.abs(x).max() + 1e-12)


def render(kind: str, rng: np.random.Generator, onset: float, length: float) -> np.ndarray:
    """One event of `kind` (peak 1) between onset and onset + length seconds, silence elsewhere."""
    t = np.arange(LENGTH) / SAMPLE_RATE
    env = _envelope(t, onset, length)
    if kind == "hum":                            # a mains-like hum: 100 Hz and its harmonics
        f0 = rng.uniform(95, 120)
        x = np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(2 * np.pi * 2 * f0 * t)
    elif kind == "drum":                         # decaying band-limited thumps at a steady tempo
        x = _bandpass_noise(rng, LENGTH, KINDS["drum"][1])
        period = rng.uniform(0.25, 0.4)
        x = x * np.exp(-((t - onset) % period) / 0.05)
    elif kind == "beep":                         # a 1 kHz tone switched on and off
        f0 = rng.uniform(950, 1150)
        period = rng.uniform(0.15, 0.3)
        x = np.sin(2 * np.pi * f0 * t) * (((t - onset) % period) < period / 2)
    elif kind == "siren":                        # a tone sweeping up and down
        rate = rng.uniform(1.5, 3.0)
        phase = 2 * np.pi * np.cumsum(2150 + 550 * np.sin(2 * np.pi * rate * t)) / SAMPLE_RATE
        x = np.sin(phase)
    elif kind == "rain":                         # high band noise with random drops
        x = _bandpass_noise(rng, LENGTH, KINDS["rain"][1]) * (0.6 + 0.4 * rng.random(LENGTH) ** 8)
    else:
        raise ValueError(f"unknown sound kind {kind!r}; the kinds are {tuple(KINDS)}")
    x = (x * env).astype(np.float32)
    return x / (np.abs(x).max() + 1e-12)


def mixture(split: str, index: int, n_sources: int | None = None) -> Mixture:
    """Mixture `index` of a split: 1-3 distinct kinds (or n_sources), random onsets, lengths and gains,
    peak-normalized to 0.9."""
    rng = _rng(split, index)
    n = int(rng.integers(1, 4)) if n_sources is None else n_sources
    if not 1 <= n <= len(KINDS):
        raise ValueError(f"n_sources must be between 1 and {len(KINDS)}, got {n}")
    kinds = [str(k) for k in rng.choice(list(KINDS), size=n, replace=False)]
    sources = []
    for kind in kinds:
        onset = float(rng.uniform(0.0, 0.6))
        length = float(rng.uniform(1.0, SECONDS - onset))
        gain = float(rng.uniform(0.5, 1.0))
        sources.append(Source(kind, gain * render(kind, rng, onset, length), onset, gain))
    mix = np.sum([s.waveform for s in sources], 0)
    scale = 0.9 / (np.abs(mix).max() + 1e-12)
    for s in sources:
        s.waveform = (s.waveform * scale).astype(np.float32)
        s.gain *= scale
    return Mixture((mix * scale).astype(np.float32), sources)


def mixtures(split: str, n: int, start: int = 0, n_sources: int | None = None) -> list[Mixture]:
    return [mixture(split, i, n_sources) for i in range(start, start + n)]


# ------------------------------------------------------------------------------------------- the oracle
def _wave(x) -> torch.Tensor:
    w = torch.as_tensor(np.asarray(x, np.float32) if not isinstance(x, torch.Tensor) else x).float()
    w = w.squeeze()
    if w.ndim != 1 or len(w) < N_FFT:
        raise ValueError(f"a waveform must be 1-D (samples,) of at least {N_FFT} samples at {SAMPLE_RATE} Hz, "
                         f"got shape {tuple(w.shape)}")
    return w


def band_energy(waveform) -> dict[str, float]:
    """Energy of a 16 kHz waveform in every kind's band: {kind: sum of |STFT|^2 over the band's bins}."""
    w = _wave(waveform)
    spec = torch.stft(w, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True).abs() ** 2   # (F, T)
    f = torch.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE)
    return {k: float(spec[(f >= lo) & (f <= hi)].sum()) for k, (_, (lo, hi)) in KINDS.items()}


def energy(waveform, kind: str) -> float:
    """Energy of `kind`'s band in a waveform."""
    if kind not in KINDS:
        raise ValueError(f"unknown sound kind {kind!r}; the kinds are {tuple(KINDS)}")
    return band_energy(waveform)[kind]


def presence(waveform, mix: Mixture, kind: str) -> float:
    """How much of the mixture's `kind` source is in `waveform`: its band energy over the clean source's
    band energy (1: all of it; 0: none; above 1: louder than it was)."""
    match = [s for s in mix.sources if s.kind == kind]
    if not match:
        raise ValueError(f"the mixture has no {kind!r}; it has {mix.kinds}")
    return energy(waveform, kind) / max(energy(match[0].waveform, kind), 1e-12)


def share(waveform, kind: str) -> float:
    """The kind's share of the energy in all five bands: how much of the sound is that kind."""
    e = band_energy(waveform)
    return e[kind] / max(sum(e.values()), 1e-12)
