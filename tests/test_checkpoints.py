"""Real checkpoints done right: v-prediction, the DDIM conversion of a checkpoint's scheduler, device and
dtype at load, and local folders checked at the door. Tiny random pipelines built in code."""
import json

import pytest
import torch

import conceptlab
from conceptlab import ddim, hooks, inversion, scaling
from conceptlab.models import Model, ddim_scheduler
from conceptlab.toy import tiny
from conceptlab.worlds import shapes


@pytest.fixture(scope="module")
def twins(tiny_pipe):
    return Model(tiny_pipe, "eps", toy=True), Model(tiny.v_twin(tiny_pipe), "v", toy=True)


def test_v_prediction_is_read_as_the_noise_it_stands_for(twins):
    eps_model, v_model = twins
    assert v_model.prediction_type == "v_prediction" and eps_model.prediction_type == "epsilon"
    z = torch.randn(3, *eps_model.latent_shape, generator=torch.Generator().manual_seed(0))
    cond = eps_model.encode_text("a red circle")
    for t in (999, 500, 21):
        assert torch.allclose(v_model.eps(z, t, cond), eps_model.eps(z, t, cond), atol=1e-4)
    raw = v_model.unet(z, torch.tensor(500), encoder_hidden_states=cond.hidden.repeat(3, 1, 1)).sample
    assert not torch.allclose(raw, eps_model.eps(z, 500, cond), atol=1e-2)      # the twin really outputs v


def test_v_prediction_inverts_scales_and_records_as_its_eps_twin(twins):
    eps_model, v_model = twins
    s = shapes.scene("heldout", 3)
    out = []
    for m in twins:
        inv = inversion.invert(m, s.image, s.caption, steps=6)
        with hooks.TrajectoryRecorder(m) as rec:
            m.generate("a red circle", steps=3, seed=0)
        out.append((inv.latents, inversion.reconstruct(m, inv), scaling.scale_concept(m, inv, s.caption, omega=3, steps=6, t_exit=2),
                    torch.stack([st.x0 for st in rec.steps])))
    for a, b in zip(*out):
        assert torch.allclose(a, b, atol=2e-3), float((a - b).abs().max())


def test_unknown_prediction_type_is_refused(tiny_pipe):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    sched = DDIMScheduler.from_config({**tiny_pipe.scheduler.config, "prediction_type": "sample"})
    with pytest.raises(ValueError, match="predicts 'sample'"):
        Model(StableDiffusionPipeline(**{**tiny_pipe.components, "scheduler": sched}), "x")


def test_a_checkpoints_scheduler_becomes_ddim_on_its_own_schedule():
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    euler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                                   timestep_spacing="leading", prediction_type="v_prediction")
    assert "clip_sample" not in euler.config and "set_alpha_to_one" not in euler.config
    d = ddim_scheduler(euler)
    assert isinstance(d, DDIMScheduler)
    assert d.config.clip_sample is False and d.config.set_alpha_to_one is False and d.config.thresholding is False
    assert d.config.prediction_type == "v_prediction" and d.config.steps_offset == 1
    assert torch.allclose(d.alphas_cumprod, euler.alphas_cumprod)
    assert DDIMScheduler().config.clip_sample is True                   # what from_config alone would have set
    clipping = DDIMScheduler(clip_sample=True)
    assert ddim_scheduler(clipping).config.clip_sample is False
    kept = DDIMScheduler(clip_sample=False)
    assert ddim_scheduler(kept) is kept


@pytest.mark.parametrize("kw, message", [
    (dict(dtype="bogus"), "dtype must be torch.float32"),
    (dict(dtype=torch.int64), "dtype must be"),
    (dict(device="gpu"), "unknown device 'gpu'"),
    (dict(device=3.5), "device must be a string"),
])
def test_bad_device_and_dtype_are_refused(kw, message):
    with pytest.raises((ValueError, TypeError), match=message):
        conceptlab.load("toy-shapes", **kw)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_says_so():
    with pytest.raises(ValueError, match="CUDA is not available.*device='cpu'"):
        conceptlab.load("toy-shapes", device="cuda")


def test_dtype_is_honoured_and_sdxl_vae_stays_float32(tmp_path, tiny_pipe):
    tiny_pipe.save_pretrained(tmp_path / "sd")
    half = conceptlab.load(str(tmp_path / "sd"), dtype="float16")
    assert half.unet.dtype == torch.float16 and half.text_encoder.dtype == torch.float16
    xl = tiny.sdxl()
    assert xl.vae.config.force_upcast
    xl.save_pretrained(tmp_path / "xl")
    m = conceptlab.load(str(tmp_path / "xl"), dtype=torch.bfloat16)
    assert m.unet.dtype == torch.bfloat16 and m.vae.dtype == torch.float32
    z = m.encode(torch.zeros(1, 3, *m.image_size))
    assert z.dtype == torch.bfloat16                                   # latents in the UNet's dtype


def test_local_folders_are_checked_at_the_door(tmp_path, tiny_pipe):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no model_index.json"):
        conceptlab.load(str(tmp_path / "empty"))
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        conceptlab.load(str(tmp_path / "file.txt"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model_index.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        conceptlab.load(str(tmp_path / "broken"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(ValueError, match="'FluxPipeline'; conceptlab supports"):
        conceptlab.load(str(tmp_path / "other"))
    from conceptlab.models import EMBEDDED
    with pytest.raises(ValueError, match="load_clip"):
        conceptlab.load(str(EMBEDDED / "toy-clip"))
    tiny_pipe.save_pretrained(tmp_path / "sd")
    (tmp_path / "sd" / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="could not load a pipeline"):
        conceptlab.load(str(tmp_path / "sd"))


def test_step_math_lives_in_one_leaf():
    import ast
    from pathlib import Path

    src = Path(ddim.__file__).read_text()
    imports = [n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ImportFrom) and n.level > 0]
    assert not imports                                                 # a leaf: imports nothing of conceptlab
    models_src = Path(conceptlab.models.__file__).read_text()
    assert "from .inversion" not in models_src and "import inversion" not in models_src
    z, e = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    x0 = ddim.predict_x0(ddim.add_noise(z, e, 0.3), e, 0.3)
    assert torch.allclose(x0, z, atol=1e-5)
    zt = ddim.add_noise(z, e, 0.3)
    assert torch.allclose(ddim.eps_from_v(zt, ddim.v_target(z, e, 0.3), 0.3), e, atol=1e-5)


def test_real_models_run_the_vae_one_image_at_a_time(tiny_pipe):
    """A VAE decode at 1024 px holds ~3 GiB an image (benchmarks/gpu_cost.py): real models slice the batch, as
    diffusers' enable_vae_slicing; the result equals the whole batch's, and the seeded sample is the same draw."""
    real = Model(tiny_pipe, "tiny-as-real", toy=False, random_weights=True)
    images = torch.rand(3, 3, *real.image_size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    calls = []
    hook = real.vae.decoder.register_forward_hook(lambda m, a, out: calls.append(out.shape[0]))
    try:
        z = real.encode(images, sample=True, seed=5)
        out = real.decode(z)
    finally:
        hook.remove()
    assert calls == [1, 1, 1]
    whole = real.vae.encode(images).latent_dist
    want = whole.sample(torch.Generator().manual_seed(5)) * real.vae.config.scaling_factor
    assert torch.allclose(z, want, atol=1e-5)
    assert torch.allclose(out, real.vae.decode(z / real.vae.config.scaling_factor).sample.clamp(-1, 1), atol=1e-5)
