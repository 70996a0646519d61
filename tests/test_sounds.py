"""The sounds world and its oracle: seeded mixtures whose sources the oracle measures exactly."""
import numpy as np
import pytest

from conceptlab.worlds import sounds


def test_mixtures_are_seeded_and_well_formed():
    a, b = sounds.mixture("heldout", 3), sounds.mixture("heldout", 3)
    assert np.array_equal(a.waveform, b.waveform) and a.caption == b.caption
    assert not np.array_equal(a.waveform, sounds.mixture("train", 3).waveform)
    for m in sounds.mixtures("train", 20):
        assert m.waveform.shape == (sounds.LENGTH,) and m.waveform.dtype == np.float32
        assert np.abs(m.waveform).max() == pytest.approx(0.9, abs=1e-4)
        assert 1 <= len(m.sources) <= 3 and len(set(m.kinds)) == len(m.kinds)
        assert np.allclose(sum(s.waveform for s in m.sources), m.waveform, atol=1e-5)
        for s in m.sources:                                       # silent before its onset
            assert np.abs(s.waveform[: int(s.onset * sounds.SAMPLE_RATE)]).max() < 1e-3
    three = sounds.mixture("heldout", 0, n_sources=3)
    assert three.caption.count(" and ") == 1 and three.caption.count(",") == 1


def test_oracle_measures_each_source_in_a_clean_mixture():
    for m in sounds.mixtures("heldout", 30):
        total = sum(sounds.band_energy(m.waveform).values())
        for k in sounds.KINDS:
            if k in m.kinds:
                assert sounds.presence(m.waveform, m, k) == pytest.approx(1.0, abs=0.05)
            else:
                assert sounds.energy(m.waveform, k) < 0.01 * total       # other bands barely leak


def test_oracle_sees_removal_and_highlighting():
    m = sounds.mixture("heldout", 0, n_sources=3)
    target, *others = m.sources
    without = m.waveform - target.waveform
    assert sounds.presence(without, m, target.kind) < 0.01
    assert all(sounds.presence(without, m, o.kind) == pytest.approx(1.0, abs=0.05) for o in others)
    louder = m.waveform + target.waveform
    assert sounds.presence(louder, m, target.kind) == pytest.approx(4.0, rel=0.05)   # twice the amplitude
    assert sounds.share(louder, target.kind) > sounds.share(m.waveform, target.kind)


def test_bad_inputs():
    m = sounds.mixture("heldout", 1)
    with pytest.raises(ValueError, match="split"):
        sounds.mixture("test", 0)
    with pytest.raises(ValueError, match="n_sources"):
        sounds.mixture("train", 0, n_sources=6)
    with pytest.raises(ValueError, match="1-D"):
        sounds.energy(np.zeros((2, 16000)), "hum")
    with pytest.raises(ValueError, match="kind"):
        sounds.energy(m.waveform, "violin")
    absent = next(k for k in sounds.KINDS if k not in m.kinds)
    with pytest.raises(ValueError, match="has no"):
        sounds.presence(m.waveform, m, absent)
