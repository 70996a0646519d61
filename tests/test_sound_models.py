"""Sound models behind the same face: toy-sounds (a spectrogram StableDiffusionPipeline) and AudioLDM 2."""
import numpy as np
import pytest
import torch

import conceptlab
from conceptlab import audio, inversion, scaling, sound_edits
from conceptlab.models import Condition, Model
from conceptlab.toy import train
from conceptlab.worlds import sounds


@pytest.fixture(scope="module")
def smoke_sounds(tmp_path_factory):
    """toy-sounds' architecture after a 3-step training run: the real front end and face, untrained weights."""
    out = tmp_path_factory.mktemp("sounds")
    train.main(["sounds", "--smoke", "--workdir", str(out / "w"), "--out", str(out / "out")])
    train.main(["sounds", "--smoke", "--workdir", str(out / "w"), "--out", str(out / "out"), "--stage", "decoder"])
    assert "decoder" in (out / "out" / "toy-sounds" / "TRAINING.json").read_text()
    return conceptlab.load(str(out / "out" / "toy-sounds"))


@pytest.fixture(scope="module")
def tiny_audioldm2():
    from conceptlab.toy import tiny

    model = Model(tiny.audioldm2(), "tiny-audioldm2")
    model.audio = model.audio.with_seconds(0.32)
    return model


def test_smoke_sound_model_face(smoke_sounds):
    m = smoke_sounds
    assert m.is_audio and m.toy and m.kind == "sd"
    assert m.image_size == (208, 64) and m.latent_shape == (4, 52, 16)
    mix = sounds.mixture("heldout", 0)
    before = mix.waveform.copy()
    z = m.encode(mix.waveform)
    assert z.shape == (1, 4, 52, 16) and torch.equal(z, m.encode(mix))          # a Mixture is taken too
    assert np.array_equal(before, mix.waveform)                                # input never modified
    assert m.decode(z).shape == (1, sounds.LENGTH)
    wave, sr = m.generate("a siren and rain", steps=2)
    assert wave.shape == (sounds.LENGTH,) and sr == 16000
    assert torch.equal(wave, m.generate("a siren and rain", steps=2)[0])        # same seed, same sound
    waves, _ = m.generate(["a hum", "rain"], steps=2)
    assert waves.shape == (2, sounds.LENGTH)


def test_sound_model_refuses_bad_input(smoke_sounds):
    m = smoke_sounds
    with pytest.raises(ValueError, match="at most 32000 samples"):
        m.encode(np.zeros(48000, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        m.encode(np.full(32000, np.nan, np.float32))
    with pytest.raises(ValueError, match="does not know the word"):
        m.generate("a red circle")
    with pytest.raises(ValueError, match="image model"):
        sound_edits.removal(conceptlab.load("toy-shapes"), sounds.mixture("heldout", 0), "hum")
    with pytest.raises(ValueError, match="has no 'beep'"):
        sound_edits.removal(m, sounds.mixture("heldout", 1), "beep")
    mix = sounds.mixture("heldout", 0)
    with pytest.raises(ValueError, match="omega must be below 1"):
        sound_edits.removal(m, mix, mix.kinds[0], omega=2.0)


def test_removal_and_highlight_rows_on_the_smoke_model(smoke_sounds):
    mix = next(m for m in sounds.mixtures("heldout", 10) if len(m.sources) >= 2)
    row = sound_edits.removal(smoke_sounds, mix, mix.kinds[0], steps=3)
    assert set(row["removed"]) == set(mix.kinds) == set(row["control"])
    signed = sound_edits.removal(smoke_sounds, mix, mix.kinds[0], steps=3, omega=-2.0)
    assert not torch.equal(signed["waves"]["removed"], row["waves"]["removed"])     # -2 is not clamped to 0
    reused = sound_edits.removal(smoke_sounds, mix, mix.kinds[0], steps=3, omega=-2.0, inv=row["inversion"])
    assert torch.equal(reused["waves"]["removed"], signed["waves"]["removed"])      # the same inversion, reused
    assert reused["inversion"] is row["inversion"]
    with pytest.raises(ValueError, match="needs"):                                  # another source's inversion
        sound_edits.removal(smoke_sounds, mix, mix.kinds[1], steps=3, inv=row["inversion"])
    with pytest.raises(ValueError, match="steps"):
        sound_edits.removal(smoke_sounds, mix, mix.kinds[0], steps=4, inv=row["inversion"])
    rows = sound_edits.highlight(smoke_sounds, mix, mix.kinds[0], [1.0, 5.0], steps=3, t_exit=1)
    assert [r["omega"] for r in rows] == [1.0, 5.0] and 0 <= rows[0]["share"] <= 1
    contrast = sound_edits.highlight(smoke_sounds, mix, mix.kinds[0], [5.0], steps=3, t_exit=1, contrast=True)
    assert not torch.equal(contrast[0]["wave"], rows[1]["wave"])        # another concept and null prompt
    noreg = sound_edits.highlight(smoke_sounds, mix, mix.kinds[0], [5.0], steps=3, t_exit=0, contrast=True)
    again = sound_edits.highlight(smoke_sounds, mix, mix.kinds[0], [5.0], steps=3, t_exit=0, contrast=True,
                                  inv=contrast[0]["inversion"])                  # no second inversion
    assert torch.equal(again[0]["wave"], noreg[0]["wave"]) and again[0]["inversion"] is contrast[0]["inversion"]
    with pytest.raises(ValueError, match="needs"):                      # the phrase's inversion, not the caption's
        sound_edits.highlight(smoke_sounds, mix, mix.kinds[0], [5.0], steps=3, contrast=True, inv=rows[0]["inversion"])
    single = next(m for m in sounds.mixtures("heldout", 20) if len(m.sources) == 1)
    with pytest.raises(ValueError, match="needs other sources"):
        sound_edits.highlight(smoke_sounds, single, single.kinds[0], [5.0], steps=3, contrast=True)


def test_audioldm2_face_two_streams_and_the_null_from_the_full_chain(tiny_audioldm2):
    m = tiny_audioldm2
    assert m.kind == "audioldm2" and m.is_audio
    null = m.null()
    assert null.hidden.shape[1] == 8 and null.hidden_2 is not None and null.mask_2 is not None
    assert null.hidden.abs().sum() > 0                                          # GPT-2 ran on "" (never zeros)
    assert torch.equal(null.hidden, m.encode_text("").hidden)
    long = m.encode_text("a red circle and a blue square on grass")
    both = Condition.cat([null, long])                                          # T5 lengths differ: padded
    assert both.hidden_2.shape[1] == max(null.hidden_2.shape[1], long.hidden_2.shape[1])
    assert both.mask_2[0, null.hidden_2.shape[1]:].sum() == 0


def test_scaling_runs_unchanged_on_audioldm2(tiny_audioldm2):
    m = tiny_audioldm2
    wave = sounds.mixture("heldout", 3).waveform[: m.audio.length]
    inv = inversion.invert(m, wave, "a red circle", steps=3)
    assert inv.latents.shape[1:] == m.latent_shape
    out = scaling.sweep(m, inv, "a red circle", [0.0, 1.0, 5.0], steps=3, t_exit=1)
    assert out.shape == (3, m.audio.length) and torch.isfinite(out).all()
    again = scaling.scale_concept(m, inv, "a red circle", omega=5.0, steps=3, t_exit=1)
    assert torch.allclose(again[0], out[2], atol=1e-5)
    wave_out, sr = m.generate("a red circle", steps=2)
    assert wave_out.shape == (m.audio.length,) and sr == 16000


def test_audioldm2_with_tokenizers_from_vocabulary_files_saved_and_loaded(tmp_path):
    """RoBERTa-style byte-level BPE files and a T5 SentencePiece (unigram) model trained here, then the
    pipeline written to disk and read back by conceptlab.load like a downloaded checkpoint."""
    from conceptlab.toy import tiny

    pipe = tiny.audioldm2(vocab_dir=tmp_path / "vocab")
    assert (tmp_path / "vocab" / "vocab.json").exists() and (tmp_path / "vocab" / "merges.txt").exists()
    assert pipe.tokenizer.convert_ids_to_tokens(pipe.tokenizer("a siren").input_ids)[1:-1] == ["a", "Ġsiren"]
    assert pipe.tokenizer_2("a siren").input_ids[-1] == pipe.tokenizer_2.eos_token_id
    pipe.save_pretrained(tmp_path / "aldm2")
    m = conceptlab.load(str(tmp_path / "aldm2"))
    assert m.kind == "audioldm2" and m.audio.style == "audioldm2" and m.audio.n_mels == 64
    assert not m.toy and torch.isfinite(m.null().hidden).all()


@pytest.fixture(scope="module")
def toy_sounds():
    return conceptlab.load("toy-sounds")


def test_toy_sounds_makes_the_sound_it_is_asked_for(toy_sounds):
    """Each kind's phrase alone gives a sound whose energy is mostly in that kind's band (the oracle's share)."""
    prompts = [phrase for phrase, _ in sounds.KINDS.values()]
    waves, rate = toy_sounds.generate(prompts, steps=20, seed=0)
    assert rate == 16000
    for kind, w in zip(sounds.KINDS, waves):
        assert sounds.share(w.numpy(), kind) > 0.8, kind


def test_toy_sounds_mixture_caption_gives_every_named_source(toy_sounds):
    wave, _ = toy_sounds.generate("a hum, a siren and rain", steps=20, seed=0)
    shares = {k: sounds.share(wave.numpy(), k) for k in sounds.KINDS}      # rain is quiet: compare, don't threshold
    assert min(shares["hum"], shares["siren"], shares["rain"]) > 10 * max(shares["beep"], shares["drum"])


def test_band_energy_loss_sees_a_level_change():
    mixes = sounds.mixtures("heldout", 2)
    x = audio.spectrogram_image(audio.log_mel(np.stack([m.waveform for m in mixes])), 208)     # (2, 1, 208, 64)
    assert float(train.band_energy_loss(x, x)) == 0.0
    louder = x + np.log(2) / audio.LOG_MEL_SCALE                      # every pixel's power doubled: +3 dB
    assert abs(float(train.band_energy_loss(louder, x)) - np.log(2) / audio.LOG_MEL_SCALE) < 1e-4
    assert float(train.band_energy_loss(x.flip(2), x)) > 0              # energy moved in time is seen
