"""The audio front end: log-mel as AudioLDM 2 frames it, and back through Griffin-Lim."""
import numpy as np
import pytest
import torch

from conceptlab import audio
from conceptlab.worlds import sounds


def test_log_mel_framing():
    m = sounds.mixture("heldout", 2)
    spec = audio.log_mel(m.waveform)
    assert spec.shape == (1, 64, 204)                      # 201 frames for 2 s at hop 160, padded to 204
    assert torch.allclose(spec[..., 201:], torch.full_like(spec[..., 201:], float(np.log(audio.FLOOR))))
    assert audio.log_mel(np.stack([m.waveform, m.waveform])).shape == (2, 64, 204)
    before = m.waveform.copy()
    audio.log_mel(m.waveform)
    assert np.array_equal(before, m.waveform)


def test_griffin_lim_keeps_every_source():
    """Phase is not recovered (the SNR is poor), but every source's band energy is, which is what the oracle reads."""
    for m in sounds.mixtures("heldout", 2, n_sources=3):
        w = audio.waveform(audio.log_mel(m.waveform), length=sounds.LENGTH)[0]
        assert w.shape == (sounds.LENGTH,)
        for k in m.kinds:
            assert sounds.presence(w.numpy(), m, k) == pytest.approx(1.0, abs=0.25)
        assert torch.equal(w, audio.waveform(audio.log_mel(m.waveform), length=sounds.LENGTH)[0])   # deterministic


def test_snr():
    m = sounds.mixture("heldout", 0)
    assert audio.snr(m.waveform, m.waveform) > 100
    assert audio.snr(m.waveform, 0.5 * m.waveform) == pytest.approx(6.02, abs=0.01)


def test_bad_audio():
    with pytest.raises(ValueError, match="16000 Hz"):
        audio.log_mel(np.zeros(32000), sample_rate=44100)
    with pytest.raises(ValueError, match="samples"):
        audio.log_mel(np.zeros(100))
    with pytest.raises(ValueError, match="NaN"):
        audio.log_mel(np.full(4000, np.nan))
    with pytest.raises(ValueError, match="log-mel"):
        audio.waveform(torch.zeros(1, 80, 10))
