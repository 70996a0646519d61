"""The model face on an untrained pipeline built in code (fast, no files)."""
import numpy as np
import pytest
import torch
from PIL import Image

import conceptlab
from conceptlab.models import Condition, ModelNotAvailableError


def test_text_encoding_and_null(tiny):
    c = tiny.encode_text(["a red circle", "a blue square on sand"])
    assert c.hidden.shape == (2, 32, 64)
    n = tiny.null()
    assert n.hidden.shape == (1, 32, 64) and n.hidden.abs().sum() > 0      # the real encoding of "", not zeros
    assert tiny.null() is n                                                  # cached


def test_eps_batches_conditions(tiny):
    z = torch.randn(1, *tiny.latent_shape, generator=torch.Generator().manual_seed(0))
    conds = tiny.encode_text(["", "a red circle"])
    both = tiny.eps(z.expand(2, -1, -1, -1), 500, conds)
    one = tiny.eps(z, 500, tiny.encode_text("a red circle"))
    assert both.shape == (2, *tiny.latent_shape)
    assert torch.allclose(both[1:], one, atol=1e-5)
    with pytest.raises(ValueError, match="conditions"):
        tiny.eps(torch.cat([z, z, z]), 500, conds)
    with pytest.raises(ValueError, match="latent must be"):
        tiny.eps(torch.randn(1, 4, 8, 8), 500, conds)


def test_encode_decode_shapes_and_inputs_untouched(tiny):
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    before = x.clone()
    z = tiny.encode(x)
    assert z.shape == (2, 4, 16, 16) and torch.equal(x, before)
    assert tiny.decode(z).shape == (2, 3, 32, 32)


def test_generate_is_deterministic(tiny):
    a = tiny.generate("a red circle on grass", steps=4, seed=3)
    b = tiny.generate("a red circle on grass", steps=4, seed=3)
    c = tiny.generate("a red circle on grass", steps=4, seed=4)
    assert isinstance(a, Image.Image) and a.size == (32, 32)
    assert np.array_equal(np.asarray(a), np.asarray(b)) and not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize("image, message", [
    (Image.new("L", (32, 32)), "mode 'L'"),
    (Image.new("RGB", (64, 48)), "64x48 .* takes 32x32"),
    (torch.full((3, 32, 32), 3.0), r"\[-1, 1\]"),
    (np.zeros((32, 32, 3), np.float32), "uint8"),
    (torch.zeros(2, 32, 32), r"\(3, H, W\)"),
    ("picture.png", "expected a PIL image"),
])
def test_bad_images_are_refused_at_the_door(tiny, image, message):
    with pytest.raises((ValueError, TypeError), match=message):
        tiny.encode(image)


@pytest.mark.parametrize("prompt, message", [
    ("", "prompt is empty"),
    ("   ", "prompt is empty"),
    (" ".join(["a red circle and"] * 12), "tokens long"),
    ("a green circle", r"does not know the word\(s\) \['green'\]"),
    (3, "must be a string"),
])
def test_bad_prompts_are_refused_at_the_door(tiny, prompt, message):
    with pytest.raises((ValueError, TypeError), match=message):
        tiny.generate(prompt, steps=2)


def test_bad_settings_are_refused(tiny):
    with pytest.raises(ValueError, match="steps"):
        tiny.generate("a red circle", steps=0)
    with pytest.raises(ValueError, match="guidance"):
        tiny.generate("a red circle", steps=2, guidance=-1)


def test_unknown_and_missing_models_say_what_to_do(monkeypatch):
    with pytest.raises(ValueError, match="unknown embedded model 'toy-cars'"):
        conceptlab.load("toy-cars")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match="someone/not-a-model.*hf download someone/not-a-model"):
        conceptlab.load("someone/not-a-model")
    with pytest.raises(ModelNotAvailableError, match="openai/clip-nowhere"):
        conceptlab.load_clip("openai/clip-nowhere")
    with pytest.raises(ValueError, match="non-empty"):
        conceptlab.load("")


def test_missing_embedded_weights_name_the_rebuild_command(monkeypatch, tmp_path):
    import conceptlab.models as models
    monkeypatch.setattr(models, "EMBEDDED", tmp_path)
    with pytest.raises(ModelNotAvailableError, match="toy-shapes.*python -m conceptlab.toy.train shapes"):
        conceptlab.load("toy-shapes")


def test_save_and_reload_give_the_same_model(tiny, tmp_path):
    tiny.pipe.save_pretrained(tmp_path / "p", safe_serialization=True)
    again = conceptlab.load(str(tmp_path / "p"))
    a = tiny.generate("a blue square", steps=3, seed=1, output="pt")
    b = again.generate("a blue square", steps=3, seed=1, output="pt")
    assert torch.allclose(a, b, atol=1e-5)


def test_unsupported_pipeline_is_named(tiny_pipe):
    from diffusers import DDPMPipeline

    with pytest.raises(ValueError, match="DDPMPipeline is not supported"):
        conceptlab.Model(DDPMPipeline(unet=tiny_pipe.unet, scheduler=tiny_pipe.scheduler), "x")


def test_condition_helpers():
    c = Condition(torch.randn(1, 4, 8))
    assert len(c.repeat(3)) == 3 and len(Condition.cat([c, c.repeat(2)])) == 3


def test_other_schedulers_are_refused_by_the_face_and_converted_by_load(tiny_pipe, tmp_path):
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(**{**tiny_pipe.components, "scheduler": PNDMScheduler.from_config(tiny_pipe.scheduler.config)})
    with pytest.raises(ValueError, match="steps with DDIM.*PNDMScheduler"):
        conceptlab.Model(pipe, "x")
    pipe.save_pretrained(tmp_path / "pndm")
    model = conceptlab.load(str(tmp_path / "pndm"))
    assert type(model.scheduler).__name__ == "DDIMScheduler"
    assert type(pipe.scheduler).__name__ == "PNDMScheduler"            # the caller's pipeline is untouched
