import pytest
import torch

from conceptlab import ddim, inversion
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
    there = ddim.ddim_step(z, eps, 0.9, 0.3)
    assert torch.allclose(ddim.ddim_step(there, eps, 0.3, 0.9), z, atol=1e-5)


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


@pytest.mark.parametrize("method", ["ddim", "renoise"])
def test_a_list_of_images_inverts_in_one_batch_as_each_alone(tiny, method):
    scenes = [shapes.scene("heldout", i) for i in range(3)]
    prompts = [s.caption for s in scenes]
    together = inversion.invert(tiny, [s.image for s in scenes], prompts, steps=4, method=method)
    assert isinstance(together, list) and len(together) == 3
    for s, inv in zip(scenes, together):
        alone = inversion.invert(tiny, s.image, s.caption, steps=4, method=method)
        assert inv.prompt == s.caption and inv.latents.shape == alone.latents.shape == (5, 4, 16, 16)
        assert torch.allclose(inv.latents, alone.latents, atol=1e-4)
    batch = inversion.reconstruct(tiny, together)                              # (B, 3, H, W), in order
    assert batch.shape == (3, 3, 32, 32)
    for b, inv in enumerate(together):
        assert torch.allclose(batch[b:b + 1], inversion.reconstruct(tiny, inv), atol=1e-4)
    shared = inversion.invert(tiny, [s.image for s in scenes[:2]], "a red circle", steps=4)
    assert [inv.prompt for inv in shared] == ["a red circle"] * 2
    per_prompt = inversion.reconstruct(tiny, shared, prompt=["", "a blue square"])
    assert torch.allclose(per_prompt[1:], inversion.reconstruct(tiny, shared[1], prompt="a blue square"), atol=1e-4)


def test_batched_inversion_refuses_mismatched_input(tiny):
    s = shapes.scene("heldout", 0)
    with pytest.raises(ValueError, match="2 inputs but 3 prompts"):
        inversion.invert(tiny, [s.image, s.image], ["a", "b", "c"], steps=3)
    with pytest.raises(ValueError, match="list of prompts needs a list of images"):
        inversion.invert(tiny, s.image, ["a red circle"], steps=3)
    with pytest.raises(ValueError, match="empty list"):
        inversion.invert(tiny, [], "a red circle", steps=3)
    two = torch.zeros(2, 3, 32, 32)
    with pytest.raises(ValueError, match="pass a list of single images"):
        inversion.invert(tiny, two, "a red circle", steps=3)
    with pytest.raises(ValueError, match="image 1 of the list"):
        inversion.invert(tiny, [s.image, two], "a red circle", steps=3)
    with pytest.raises(ValueError, match="empty list of inversions"):
        inversion.reconstruct(tiny, [])
    with pytest.raises(ValueError, match="1 inputs but 2 prompts"):
        inversion.reconstruct(tiny, [inversion.invert(tiny, s.image, "a", steps=3)], prompt=["a", "b"])
    with pytest.raises(TypeError, match="takes Inversions"):
        inversion.reconstruct(tiny, [s.image])


def test_ddpm_step_lands_where_its_noise_map_says():
    g = torch.Generator().manual_seed(0)
    z, eps, target = (torch.randn(1, 4, 3, 3, generator=g) for _ in range(3))
    noise = ddim.ddpm_noise(z, target, eps, 0.3, 0.6)
    assert torch.allclose(ddim.ddpm_step(z, eps, 0.3, 0.6, noise), target, atol=1e-5)
    # eta = 1: sigma^2 = (1 - abar_s) / (1 - abar_t) (1 - abar_t / abar_s), the posterior variance of DDPM
    assert ddim.ddpm_sigma(0.3, 0.6) == pytest.approx(((0.4 / 0.7) * (1 - 0.5)) ** 0.5)


def test_edit_friendly_inversion_round_trip_is_exact(tiny, tmp_path):
    """Huberman-Spiegelglas et al.: the noisy latents are drawn independently and each step's noise map is
    solved, so sampling back with the inversion's prompt lands on the clean latent itself."""
    scenes = [shapes.scene("heldout", i) for i in range(2)]
    invs = inversion.invert(tiny, [s.image for s in scenes], [s.caption for s in scenes], steps=6, method="ddpm",
                            seed=3)
    for s, inv in zip(scenes, invs):
        assert inv.method == "ddpm" and inv.noises.shape == (6, 4, 16, 16) and inv.latents.shape == (7, 4, 16, 16)
        assert torch.allclose(inv.latents[0:1], tiny.encode(s.image))
    again = inversion.invert(tiny, scenes[0].image, scenes[0].caption, steps=6, method="ddpm", seed=3)
    assert torch.allclose(again.latents, invs[0].latents, atol=1e-5)                 # seeded
    other = inversion.invert(tiny, scenes[0].image, scenes[0].caption, steps=6, method="ddpm", seed=4)
    assert not torch.allclose(other.latents[1:], invs[0].latents[1:])
    x = torch.cat([tiny.encode(s.image) for s in scenes])
    back = inversion.reconstruct(tiny, invs)
    assert torch.allclose(back, tiny.decode(x), atol=1e-4)                           # exact, up to rounding
    # scaling at omega 1, gamma 0, no regularization is the same reconstruction
    from conceptlab import scaling

    same = scaling.scale_concept(tiny, invs[0], scenes[0].caption, omega=1.0, gamma=0, regularize=False, steps=6)
    assert torch.allclose(same, back[:1], atol=1e-4)
    invs[0].save(tmp_path / "ef.pt")
    assert torch.equal(inversion.Inversion.load(tmp_path / "ef.pt").noises, invs[0].noises)
    ddim_inv = inversion.invert(tiny, scenes[1].image, scenes[1].caption, steps=6)
    with pytest.raises(ValueError, match="cannot share a batch"):
        inversion.reconstruct(tiny, [invs[0], ddim_inv])
