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


# ------------------------------------------------------------------------------------------ ReNoise as the authors run it
def authors_regularization(e_t, optimal, generator):
    """ReNoise's noise regularization as src/renoise_inversion.py @e201f3a runs it (RunConfig defaults: 4 rounds,
    patch-KL step 0.065 clipped at 100, 5 auto-correlation rolls of step 20), re-derived for this test."""
    def kl_of(x0, x1):
        def patchify(x):
            return x.unfold(1, 4, 4).unfold(2, 4, 4).unfold(3, 4, 4).contiguous().view(-1, 4, 4, 4)
        a, b = patchify(x0), patchify(x1)
        a, b = a.view(a.shape[0], a.shape[1], -1), b.view(b.shape[0], b.shape[1], -1)
        mu0, mu1, var0, var1 = a.mean(-1), b.mean(-1), a.var(-1), b.var(-1)
        kl = torch.log((var1 + 1e-6) / (var0 + 1e-6)) + (var0 + (mu0 - mu1) ** 2) / (var1 + 1e-6) - 1
        return torch.abs(kl).sum(-1).sum()

    def auto_corr(x):
        x = x.squeeze(0)
        loss = 0.0
        for ch in range(x.shape[0]):
            noise = x[ch][None, None]
            while True:
                roll = torch.randint(0, noise.shape[2] // 2, (1,), generator=generator).item()
                loss += (noise * torch.roll(noise, shifts=roll, dims=2)).mean() ** 2
                loss += (noise * torch.roll(noise, shifts=roll, dims=3)).mean() ** 2
                if noise.shape[2] <= 8:
                    break
                noise = torch.nn.functional.avg_pool2d(noise, kernel_size=2)
        return loss

    for _ in range(4):
        var = e_t.detach().clone().requires_grad_(True)
        kl_of(var, optimal).backward()
        e_t = e_t - 0.065 * torch.clip(var.grad.detach(), -100, 100)
        for _ in range(5):
            var = e_t.detach().clone().requires_grad_(True)
            auto_corr(var).backward()
            e_t = e_t - 20.0 * var.grad.detach() / 5
        e_t = e_t.detach()
    return e_t


def authors_renoise(model, image, prompt: str, steps: int, seed: int, renoise_steps: int = 1) -> torch.Tensor:
    """ScalingConcept's inversion (main.run, sdxl_inversion_pipeline.py and inversion_step @e201f3a, demo settings),
    re-derived: one generator for the VAE posterior sample, the forward noise and the shifts; per step a batch of
    the forward-noised z_0 and the current latent, then renoise steps; averaging and regularization over
    [0, 5) below t = 250 and [8, 10) above; their inv_step formula. Returns the bank (N+1, C, h, w)."""
    from diffusers.utils.torch_utils import randn_tensor

    from conceptlab.images import to_tensor

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        dist = model.vae.encode(to_tensor(image, model.image_size)).latent_dist
        z_0 = dist.sample(generator=generator) * model.vae.config.scaling_factor
    noise = randn_tensor(z_0.shape, generator=generator, dtype=z_0.dtype)
    sched = model.scheduler
    sched.set_timesteps(steps)
    cond = model.encode_text(prompt)

    def inv_step(e, t, sample):
        prev = t - sched.config.num_train_timesteps // sched.num_inference_steps
        a_t = sched.alphas_cumprod[t]
        a_p = sched.alphas_cumprod[prev] if prev >= 0 else sched.final_alpha_cumprod
        direction = (1 - a_p) ** 0.5 * e
        return (a_t ** 0.5 * sample) / a_p ** 0.5 + (a_p ** 0.5 * (1 - a_t) ** 0.5 * e) / a_p ** 0.5 \
            - (a_t ** 0.5 * direction) / a_p ** 0.5

    latents, bank = z_0, [z_0]
    for t in reversed(sched.timesteps):
        avg_range = (0, 5) if t.item() < 250 else (8, 10)
        n = min(5, renoise_steps) if t.item() < 250 else renoise_steps
        avg, optimal = None, None
        z_fwd = sched.add_noise(z_0, noise, t.view(1))
        approx = latents.clone()
        for i in range(n + 1):
            with torch.no_grad():
                if i == 0:
                    optimal, pred = model.eps(torch.cat([z_fwd, approx]), t, cond).chunk(2)
                else:
                    pred = model.eps(approx, t, cond)
                if avg_range[0] <= i < avg_range[1]:
                    j = i - avg_range[0]
                    avg = pred.clone() if avg is None else j * avg / (j + 1) + pred / (j + 1)
            if i >= avg_range[0]:
                pred = authors_regularization(pred, optimal, generator)
            approx = inv_step(pred, t, latents)
        if avg is not None:
            approx = inv_step(authors_regularization(avg, optimal, generator), t, latents)
        latents = approx
        bank.append(latents)
    return torch.cat(bank)


@pytest.mark.parametrize("renoise_steps", [1, 2])
def test_renoise_authors_is_the_authors_inversion(tiny, renoise_steps):
    """method="renoise-authors" gives the authors' memory bank within 1e-5 (float32), regularization on: 8 steps,
    so that two of them fall below t = 250 where it acts; with 1 and 2 renoise steps."""
    image = shapes.scene("heldout", 3).image
    theirs = authors_renoise(tiny, image, "a red circle", steps=8, seed=7865, renoise_steps=renoise_steps)
    ours = inversion.invert(tiny, image, "a red circle", steps=8, method="renoise-authors", seed=7865,
                            renoise_steps=renoise_steps)
    assert (ours.latents - theirs).abs().max() <= 1e-5
    plain = inversion.invert(tiny, image, "a red circle", steps=8, method="renoise", renoise_steps=renoise_steps)
    assert (plain.latents - theirs).abs().max() > 1e-3                  # the regularization and sampled z_0 matter
    again = inversion.invert(tiny, [image, shapes.scene("heldout", 4).image], "a red circle", steps=8,
                             method="renoise-authors", seed=7865, renoise_steps=renoise_steps)
    assert (again[0].latents - ours.latents).abs().max() <= 1e-5        # a batch: each image as alone


def test_renoise_authors_refuses_latents_it_cannot_patch(tiny, monkeypatch):
    monkeypatch.setattr(type(tiny), "latent_shape", property(lambda self: (8, 6, 6)))
    with pytest.raises(ValueError, match="multiples of 4"):
        inversion.invert(tiny, shapes.scene("heldout", 0).image, "a red circle", steps=4, method="renoise-authors")
