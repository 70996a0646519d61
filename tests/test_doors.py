"""Bad inputs end at the door with a message that says what was wrong and what to do (issue 29's sweep):
numbers and seeds, images, prompts, inversions, audio, hooks and metrics. Each case here once raised from deep
inside torch, diffusers or numpy, or returned a wrong result without a word."""
import numpy as np
import pytest
import torch
from PIL import Image

from conceptlab import checks, express, hooks, inversion, metrics, scaling
from conceptlab.audio import as_batch
from conceptlab.worlds import oracle, shapes


@pytest.fixture(scope="module")
def inv(toy):
    return inversion.invert(toy, shapes.scene("heldout", 0).image, "a red circle", steps=4)


# ------------------------------------------------------------------ numbers and seeds
def test_numpy_scalars_are_numbers(toy, inv):
    a = scaling.scale_concept(toy, inv, "a red circle", omega=np.float32(3), t_exit=np.int64(2), steps=4)
    b = scaling.scale_concept(toy, inv, "a red circle", omega=3.0, t_exit=2, steps=4)
    assert torch.equal(a, b)
    assert checks.as_seed(np.int64(7)) == 7 and isinstance(checks.as_seed(np.int64(7)), int)


@pytest.mark.parametrize("omega, message", [(1e300, "from -1000 to 1000"), (float("nan"), "finite number"),
                                            ("5", "finite number"), (True, "finite number")])
def test_omega_is_checked(toy, inv, omega, message):
    with pytest.raises(ValueError, match=message):
        scaling.scale_concept(toy, inv, "a red circle", omega=omega, steps=4)


def test_omegas_must_be_a_list(toy, inv):
    with pytest.raises(ValueError, match=r"omegas must be a non-empty list.*\[5\]"):
        scaling.sweep(toy, inv, "a red circle", 5, steps=4)
    with pytest.raises(ValueError, match="omegas must be a non-empty list"):
        scaling.sweep(toy, [inv], "a red circle", [], steps=4)


@pytest.mark.parametrize("seed", [None, "0", 1.5, -1, True])
def test_seeds_are_integers(toy, seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        toy.generate("a red circle", steps=2, seed=seed)
    with pytest.raises(ValueError, match="seed must be an integer"):
        toy.encode(shapes.scene("heldout", 0).image, sample=True, seed=seed)


def test_guidance_and_negative_prompt_are_checked(toy):
    with pytest.raises(ValueError, match="guidance must be"):
        toy.generate("a red circle", steps=2, guidance=float("nan"))
    with pytest.raises(ValueError, match="does not know the word"):
        toy.generate("a red circle", steps=2, negative_prompt="a purple dragon")


def test_editor_scale_must_be_finite(toy):
    for bad in (float("nan"), float("inf"), "3"):
        with pytest.raises(ValueError, match="scale must be a finite number"):
            hooks.AttentionEditor(toy, "red", scale=bad, prompt="a red circle")


# ------------------------------------------------------------------ prompts
def test_word_fragments_are_not_words(toy):
    with pytest.raises(ValueError, match=r"does not know the word\(s\) \['ack', 'ass'"):
        toy.check_prompt("a ack ass ark circle")
    assert toy.check_prompt("a red circle and a blue square on grass.")      # punctuation is fine


def test_token_template_and_joint_prompt(toy):
    scene = shapes.scene("heldout", 2)
    with pytest.raises(ValueError, match="template must hold one"):
        express.learn_tokens(toy, scene.image, np.stack(scene.masks), steps=2, template="a photo", progress=False)
    masks = np.zeros((16, 32, 32), bool)                     # "a <c0> and ... and <c15>": 34 tokens of 32
    for i in range(16):
        masks[i, (i // 4) * 8:(i // 4) * 8 + 6, (i % 4) * 8:(i % 4) * 8 + 6] = True
    with pytest.raises(ValueError, match="joint prompt of 16 concepts is 34 tokens"):
        express.learn_tokens(toy, scene.image, masks, steps=2, progress=False)


# ------------------------------------------------------------------ images
def test_one_image_functions_refuse_a_batch(toy):
    two = torch.zeros(2, 3, 32, 32)
    with pytest.raises(ValueError, match="localize takes one image, got a batch of 2"):
        express.localize(toy, two)
    scene = shapes.scene("heldout", 2)
    with pytest.raises(ValueError, match="learn_tokens takes one image, got a batch of 2"):
        express.learn_tokens(toy, two, np.stack(scene.masks), steps=2, progress=False)


def test_localize_timestep_is_checked(toy):
    image = shapes.scene("heldout", 2).image
    for t in (5000, -1, 2.5):
        with pytest.raises(ValueError, match="t must be an integer"):
            express.localize(toy, image, t=t)


def test_oracle_refuses_ambiguous_float_arrays():
    scene = shapes.scene("heldout", 0)
    as_float = scene.image.astype(np.float32) / 127.5 - 1                    # (H, W, 3) in [-1, 1]
    with pytest.raises(ValueError, match="ambiguous"):
        oracle.presence(as_float, scene.labels[0])
    assert oracle.presence(scene.image.astype(np.float32), scene.labels[0]) == oracle.presence(scene.image, scene.labels[0])


# ------------------------------------------------------------------ inversions
def test_nan_inversion_is_refused(toy, inv):
    import dataclasses

    bad = dataclasses.replace(inv, latents=inv.latents.clone())
    bad.latents[2, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf latents"):
        scaling.scale_concept(toy, bad, "a red circle", steps=4)


def test_an_inversion_scales_its_own_concept(toy, inv):
    with pytest.raises(ValueError, match="made with the prompt 'a red circle' but the concept to scale is 'a yellow square'"):
        scaling.scale_concept(toy, inv, "a yellow square", steps=4)


# ------------------------------------------------------------------ audio
def test_waveforms_at_the_door():
    pcm = (np.sin(np.linspace(0, 200, 4000)) * 16000).astype(np.int16)
    w = as_batch(pcm)
    assert w.dtype == torch.float32 and 0.45 < float(w.abs().max()) < 0.5            # int16 PCM scaled
    with pytest.raises(ValueError, match="peak of 100"):
        as_batch(np.full(4000, 100.0, np.float32))
    with pytest.raises(TypeError, match="got Image"):
        as_batch(Image.new("RGB", (64, 64)))
    f = np.zeros(4000, np.float32)
    as_batch(f)[0, 0] = 1.0
    assert f[0] == 0                                                                # the input is not modified


def test_sound_model_doors():
    import conceptlab
    from conceptlab.worlds import sounds

    sound = conceptlab.load("toy-sounds")
    mix = sounds.mixture("heldout", 0)
    with pytest.raises(TypeError, match="is a sound model"):
        sound.encode(Image.new("RGB", (64, 64)))
    import dataclasses
    with pytest.raises(ValueError, match="at 8000 Hz but toy-sounds takes 16000 Hz"):
        sound.encode(dataclasses.replace(mix, sample_rate=8000))


# ------------------------------------------------------------------ hooks
def test_a_recorder_used_twice_starts_afresh(toy):
    rec = hooks.AttentionRecorder(toy, kind="cross", running_mean=True, prompt="a red circle")
    with rec:
        toy.generate("a red circle", steps=3)
    first = rec.cache
    counts = dict(first.counts)
    with rec:
        toy.generate("a red circle", steps=2)
    assert rec.cache is not first and dict(first.counts) == counts            # the first run's cache is kept
    assert set(rec.cache.counts.values()) == {2}                                # the second counts its own steps


def test_recorder_settings_and_empty_selections(toy):
    with pytest.raises(ValueError, match="grid side"):
        hooks.AttentionRecorder(toy, resolution=-4)
    with pytest.raises(ValueError, match="grid side"):
        hooks.AttentionRecorder(toy, resolution=0)
    assert hooks.AttentionRecorder(toy, dtype="float16").dtype == torch.float16
    with pytest.raises(ValueError, match="dtype must be"):
        hooks.AttentionRecorder(toy, dtype="bogus")
    with hooks.AttentionRecorder(toy, kind="cross", steps=[99], prompt="a red circle") as rec:
        toy.generate("a red circle", steps=2)
    with pytest.raises(KeyError, match="matched nothing"):
        rec.cache.token_map("red")


# ------------------------------------------------------------------ metrics
def test_metrics_refuse_mismatched_shapes():
    a, b = torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 8, 8)
    for fn in (metrics.psnr, metrics.ssim):
        with pytest.raises(ValueError, match="images of one shape"):
            fn(a, b)
    with pytest.raises(ValueError, match="one width D"):
        metrics.frechet_distance(torch.zeros(4, 8), torch.zeros(4, 6))
    with pytest.raises(ValueError, match="mask \\(H, W\\) of its size"):
        metrics.masked_region(torch.zeros(1, 3, 16, 16), np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="non-negative"):
        metrics.share_inside(torch.tensor([[1.0, -2.0], [0.5, 0.5]]), np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="smaller than the attention map"):
        metrics.share_inside(torch.ones(4, 4), np.ones((2, 2), bool))
    assert metrics.psnr(torch.zeros(1, 3, 8, 8), torch.zeros(3, 3, 8, 8) + 0.5).shape == (3,)   # one against many


def test_a_flat_image_is_said_to_hold_no_object(toy):
    with pytest.warns(UserWarning, match="nearly uniform"):
        express.localize(toy, np.full((32, 32, 3), 128, np.uint8))


def test_a_zero_one_tensor_is_warned_about(toy):
    """A [0, 1] picture is valid [-1, 1] data: it is accepted, with a warning that names the conversion; a
    [-1, 1] picture of the same scene is not warned about."""
    from conceptlab.images import to_tensor

    x = torch.from_numpy(shapes.scene("heldout", 0).image).permute(2, 0, 1).float() / 255      # [0, 1]
    with pytest.warns(UserWarning, match=r"x \* 2 - 1"):
        out = to_tensor(x)
    assert torch.equal(out[0], x)                                     # accepted as given
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_tensor(x * 2 - 1)
        toy.encode(x * 2 - 1)


def test_paths_that_are_not_there_and_folders_of_the_wrong_kind(tmp_path):
    """A path-like name that does not exist is a missing folder (not a model to `hf download`); load_clip given a
    pipeline folder, or a folder of another model, says so; a missing inversion file is named."""
    import json

    import conceptlab
    from conceptlab.models import EMBEDDED

    for name in ("./no_such_folder", "../x/y", str(tmp_path / "missing"), "a/b/c"):
        with pytest.raises(FileNotFoundError, match="there is no folder"):
            conceptlab.load(name)
    with pytest.raises(ValueError, match="holds a diffusers pipeline, not a CLIP model"):
        conceptlab.load_clip(str(EMBEDDED / "toy-shapes"))
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="holds a 'bert' model, not CLIP"):
        conceptlab.load_clip(str(tmp_path / "bert"))
    with pytest.raises(FileNotFoundError, match="no inversion file"):
        inversion.Inversion.load(tmp_path / "inv.pt")


def test_the_oracle_refuses_an_image_smaller_than_the_world():
    with pytest.raises(ValueError, match="smaller than the shapes world"):
        oracle.presence(np.zeros((7, 7, 3), np.uint8), "red circle")
    assert 0 <= oracle.presence(np.zeros((64, 64, 3), np.uint8), "red circle") <= 1     # larger: box-filtered
