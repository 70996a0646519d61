import pytest
import torch

from conceptlab import inversion
from conceptlab.worlds import shapes


def test_bank_layout_and_reuse_guard(tiny):
    s = shapes.scene("heldout", 1)
    inv = inversion.invert(tiny, s.image, s.caption, steps=5)
    assert inv.latents.shape == (6, 4, 16, 16) and inv.steps == 5
    assert torch.allclose(inv.latents[0:1], tiny.encode(s.image))           # bank[0] is the clean latent
    assert torch.equal(inv.at_step(0), inv.z_T)                               # step 0 starts from z_T
    with pytest.raises(ValueError, match="5 steps but 7"):
        inversion.check_inversion(tiny, inv, 7)
    with pytest.raises(ValueError, match="unknown inversion method"):
        inversion.invert(tiny, s.image, s.caption, steps=5, method="magic")


def test_our_sampler_matches_the_diffusers_pipeline(tiny):
    """Our DDIM loop and StableDiffusionPipeline agree on the same noise (guidance 3)."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, *tiny.latent_shape, generator=g)
    ours = tiny.decode(inversion.sample(tiny, z, tiny.encode_text("a red circle"), steps=6, guidance=3.0))
    theirs = tiny.pipe("a red circle", num_inference_steps=6, guidance_scale=3.0, latents=z.clone(),
                       height=32, width=32, output_type="pt").images * 2 - 1
    assert torch.allclose(ours, theirs, atol=2e-3)


def test_ddim_step_inverts_itself():
    z, eps = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    there = inversion.ddim_step(z, eps, 0.9, 0.3)
    assert torch.allclose(inversion.ddim_step(there, eps, 0.3, 0.9), z, atol=1e-5)


def test_renoise_inversion_reconstructs_at_least_as_well_as_ddim(toy):
    from conceptlab import inversion
    from conceptlab.worlds import shapes

    errs = {}
    for method in ("ddim", "renoise"):
        e = []
        for i in range(3):
            s = shapes.scene("heldout", i)
            inv = inversion.invert(toy, s.image, s.caption, steps=10, method=method)
            assert inv.method == method and inv.latents.shape[0] == 11
            x = toy.encode(s.image)
            e.append(float(((toy.decode(x) - inversion.reconstruct(toy, inv)) ** 2).mean()))
        errs[method] = sum(e) / len(e)
    assert errs["renoise"] <= errs["ddim"] * 1.05


def test_inversion_saves_and_loads(tiny, tmp_path):
    from conceptlab import inversion
    from conceptlab.worlds import shapes

    s = shapes.scene("heldout", 0)
    inv = inversion.invert(tiny, s.image, s.caption, steps=3, method="renoise", renoise_steps=2)
    inv.save(tmp_path / "inv.pt")
    back = inversion.Inversion.load(tmp_path / "inv.pt")
    assert torch.equal(back.latents, inv.latents) and torch.equal(back.timesteps, inv.timesteps)
    assert (back.prompt, back.method, back.model_name) == (inv.prompt, "renoise", "tiny-random")
    with pytest.raises(ValueError, match="renoise_steps"):
        inversion.invert(tiny, s.image, s.caption, steps=3, method="renoise", renoise_steps=-1)
