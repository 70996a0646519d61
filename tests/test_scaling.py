"""ScalingConcept's sampler: the schedule, the special cases that must reduce to known samplers, batching,
the regularization's branches, and the door checks."""
import pytest
import torch

from conceptlab import hooks, inversion, scaling
from conceptlab.worlds import shapes


@pytest.fixture(scope="module")
def scene():
    return shapes.scene("heldout", 1)


@pytest.fixture(scope="module")
def inv(tiny, scene):
    return inversion.invert(tiny, scene.image, "a red circle", steps=6)


def test_weights_follow_the_schedule():
    assert torch.allclose(scaling.weights(5, 0, 4), torch.full((4,), 5.0))            # gamma 0: constant
    assert torch.allclose(scaling.weights(5, 1, 5), torch.tensor([5.0, 3.75, 2.5, 1.25, 0.0]))
    assert torch.allclose(scaling.weights(2, 3, 3), torch.tensor([2.0, 0.25, 0.0]))   # 2 * (1/2)^3
    assert torch.all(scaling.weights(-2, 3, 5) == 0)                                   # clamped like the authors' code
    assert scaling.weights(-2, 0, 3, clamp=False).tolist() == [-2.0, -2.0, -2.0]
    assert scaling.weights(3, 3, 1).tolist() == [3.0]


def test_omega_one_gamma_zero_without_regularization_is_the_reconstruction(tiny, inv):
    z = scaling.scaled_sample(tiny, inv, "a red circle", [1.0], gamma=0, regularize=False)
    rec = inversion.sample(tiny, inv.z_T, tiny.encode_text("a red circle"), inv.steps)
    assert torch.allclose(z, rec, atol=1e-4)            # equal up to float error of a batched forward


def test_t_exit_zero_is_no_regularization(tiny, inv):
    a = scaling.scaled_sample(tiny, inv, "a red circle", [3.0], t_exit=0)
    b = scaling.scaled_sample(tiny, inv, "a red circle", [3.0], regularize=False)
    assert torch.equal(a, b)


def test_sweep_batches_omegas_like_separate_edits(tiny, inv):
    many = scaling.sweep(tiny, inv, "a red circle", [0.0, 2.0, 5.0], t_exit=2, steps=6)
    one = scaling.scale_concept(tiny, inv, "a red circle", omega=2.0, t_exit=2, steps=6)
    assert many.shape == (3, 3, 32, 32)
    assert torch.allclose(many[1:2], one, atol=1e-4)
    assert not torch.allclose(many[0], many[2], atol=1e-3)


def test_one_batched_unet_call_per_step_and_named_branches(tiny, scene):
    calls = []
    handle = tiny.unet.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    try:
        with hooks.TrajectoryRecorder(tiny) as traj:
            scaling.scale_concept(tiny, scene.image, "a red circle", omega=3, t_exit=2, steps=5)
    finally:
        handle.remove()
    assert calls == [1] * 5 + [2] * 5                      # 5 inversion steps, then 5 steps of one batch of 2
    scaled = traj.stage("scaled")
    assert [set(s.branches) for s in scaled] == [{"null", "regularized"}] * 2 + [{"null", "concept"}] * 3
    assert len(traj.stage("invert")) == 5


def test_regularization_uses_the_memory_bank(tiny, inv):
    """At step 0, z_ref = (z_T + bank[N]) / 2 = z_T: the regularized branch equals the concept branch."""
    with hooks.TrajectoryRecorder(tiny) as reg:
        scaling.scaled_sample(tiny, inv, "a red circle", [3.0], t_exit=3)
    with hooks.TrajectoryRecorder(tiny) as plain:
        scaling.scaled_sample(tiny, inv, "a red circle", [3.0], regularize=False)
    assert torch.allclose(reg.steps[0].branches["regularized"], plain.steps[0].branches["concept"], atol=1e-5)
    assert not torch.allclose(reg.steps[2].branches["regularized"], plain.steps[2].branches["concept"], atol=1e-4)


@pytest.mark.parametrize("kw, match", [
    (dict(omega=float("nan")), "omega must be a finite number"),
    (dict(omega="5"), "omega must be a finite number"),
    (dict(gamma=-1), "gamma must be from 0 to 100"),
    (dict(t_exit=60), "t_exit must be an integer from 0 to 6"),
    (dict(t_exit=2.5), "t_exit must be an integer"),
])
def test_bad_parameters_are_named(tiny, inv, kw, match):
    with pytest.raises(ValueError, match=match):
        scaling.scale_concept(tiny, inv, "a red circle", steps=6, **{"t_exit": 2, **kw})


def test_inversion_reuse_and_prompt_checks(tiny, inv, scene):
    with pytest.raises(ValueError, match="has 6 steps but 50 were asked"):
        scaling.scale_concept(tiny, inv, "a red circle")
    with pytest.raises(ValueError, match="prompt is empty"):
        scaling.scale_concept(tiny, inv, "", steps=6, t_exit=2)
    with pytest.raises(ValueError, match="omegas must be a non-empty list"):
        scaling.sweep(tiny, inv, "a red circle", [], steps=6)
    image = scene.image.copy()
    scaling.scale_concept(tiny, image, "a red circle", steps=2, t_exit=1)
    assert (image == scene.image).all()                   # the input is never modified


def test_sdxl_null_is_the_encoders_empty_prompt_not_zeros():
    from conceptlab.models import Model
    from conceptlab.toy import tiny as tiny_pipes

    model = Model(tiny_pipes.sdxl(), "tiny-sdxl")
    null = model.null()
    assert null.hidden.abs().sum() > 0 and null.pooled.abs().sum() > 0
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    out = scaling.sweep(model, x, "a red circle", [0.0, 3.0], steps=3, t_exit=1)
    assert out.shape == (2, 3, 16, 16) and torch.isfinite(out).all()


def test_a_list_of_inputs_sweeps_in_one_batch_as_each_alone(tiny):
    scenes = [shapes.scene("heldout", i) for i in (1, 2)]
    concepts = [f"a {s.labels[0]}" for s in scenes]
    invs = inversion.invert(tiny, [s.image for s in scenes], concepts, steps=6)
    calls = []
    handle = tiny.unet.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    try:
        together = scaling.sweep(tiny, invs, concepts, [0.0, 3.0], t_exit=2, steps=6, forward_prompt=["", "grass"])
    finally:
        handle.remove()
    assert calls == [8] * 6                                  # 2 inputs x 2 omegas x 2 branches, one call a step
    assert isinstance(together, list) and [x.shape for x in together] == [(2, 3, 32, 32)] * 2
    for inv, c, fp, out in zip(invs, concepts, ["", "grass"], together):
        alone = scaling.sweep(tiny, inv, c, [0.0, 3.0], t_exit=2, steps=6, forward_prompt=fp)
        assert torch.allclose(out, alone, atol=1e-4)
    from_images = scaling.sweep(tiny, [scenes[0].image, invs[1]], concepts, [3.0], t_exit=2, steps=6)
    assert torch.allclose(from_images[0], together[0][1:], atol=1e-4)


def test_a_list_of_inputs_refuses_mismatched_prompts(tiny, inv):
    with pytest.raises(ValueError, match="2 inputs but 3 concepts"):
        scaling.sweep(tiny, [inv, inv], ["a", "b", "c"], [1.0], steps=6)
    with pytest.raises(ValueError, match="1 forward prompts"):
        scaling.sweep(tiny, [inv, inv], "a red circle", [1.0], steps=6, forward_prompt=[""])
    with pytest.raises(ValueError, match="empty list of inputs"):
        scaling.sweep(tiny, [], "a red circle", [1.0], steps=6)
    with pytest.raises(ValueError, match="6 steps but 4"):
        scaling.sweep(tiny, [inv], "a red circle", [1.0], steps=4)
    with pytest.raises(ValueError, match="4 steps but 6"):
        scaling.sweep(tiny, [inv, inversion.invert(tiny, shapes.scene("heldout", 0).image, "a", steps=4)], "a", [1.0], steps=6)


def authors_loop(model, inv, concept: str, omega: float, gamma: float, t_exit: int) -> torch.Tensor:
    """ScalingConcept's sampler as the authors' code runs it (src/pipes/sdxl_forward_pipeline.py @e201f3a,
    re-derived, not copied): each branch its own batch-1 UNet call, eps_c computed on every step, the weight
    max(0, omega (1 - i/(N-1))^gamma), the reference (z_i + bank[N - i]) / 2, then the scheduler's DDIM step."""
    n = inv.steps
    model.scheduler.set_timesteps(n)
    null, c = model.null(), model.encode_text(concept)
    z = inv.z_T.clone()
    for i, t in enumerate(model.scheduler.timesteps):
        ref = 0.5 * z + 0.5 * inv.latents[n - i: n - i + 1]
        e_null, e_fwd = model.eps(z, t, null), model.eps(z, t, c)
        s = max(0.0, omega * (1 - i / (n - 1)) ** gamma)
        e = e_null + s * (e_fwd - e_null)
        if i < t_exit:
            e = e + s * (model.eps(ref, t, c) - e_fwd)
        z = model.scheduler.step(e, t, z, eta=0.0).prev_sample
    return z


@pytest.mark.parametrize("backbone", ["sd", "sdxl"])
@pytest.mark.parametrize("omega", [0.0, 1.0, 5.0])
def test_the_sampler_is_the_authors_loop(tiny, backbone, omega):
    """From the same memory bank, conceptlab's batched sampler (two evaluations a step in one forward, no wasted
    eps_c while regularizing) ends where the authors' loop ends, within 1e-4 in float32."""
    from conceptlab.models import Model
    from conceptlab.toy import tiny as tiny_pipes

    model = tiny if backbone == "sd" else Model(tiny_pipes.sdxl(), "tiny-sdxl")
    x = torch.rand(1, 3, *model.image_size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    inv = inversion.invert(model, x, "a red circle", steps=8)
    ours = scaling.scaled_sample(model, inv, "a red circle", [omega], gamma=3.0, t_exit=3)
    theirs = authors_loop(model, inv, "a red circle", omega, 3.0, 3)
    assert (ours - theirs).abs().max() <= 1e-4


def test_the_authors_preset_is_the_authors_edit(tiny):
    """scale_concept(**scaling.AUTHORS) is the authors' whole edit: their ReNoise inversion (re-derived in
    test_inversion.py) then their sampler, within 1e-4 in pixels."""
    from test_inversion import authors_renoise

    image = shapes.scene("heldout", 3).image
    bank = authors_renoise(tiny, image, "a red circle", steps=8, seed=7865)
    inv = inversion.Inversion(bank, tiny.timesteps(8), "a red circle", "renoise-authors", tiny.name)
    theirs = tiny.decode(authors_loop(tiny, inv, "a red circle", 5.0, 3.0, scaling.default_t_exit(8)))
    ours = scaling.scale_concept(tiny, image, "a red circle", omega=5.0, steps=8, **scaling.AUTHORS)
    assert (ours - theirs).abs().max() <= 1e-4


def test_the_papers_weight_schedule_is_an_option(tiny):
    """beta="paper": omega (t_i/T)^gamma on the run's timesteps. At 50 steps on SD's timesteps it differs from the
    authors' omega (1 - i/(N-1))^gamma by at most 0.056 omega, at the first step; scaling runs with either."""
    import diffusers

    sched = diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                    steps_offset=1, clip_sample=False, set_alpha_to_one=False)
    sched.set_timesteps(50)
    paper, code = scaling.weights(1.0, 3.0, 50, timesteps=sched.timesteps), scaling.weights(1.0, 3.0, 50)
    gap = (paper - code).abs()
    assert abs(float(gap.max()) - 0.056) < 0.001 and int(gap.argmax()) == 0
    inv = inversion.invert(tiny, shapes.scene("heldout", 0).image, "a red circle", steps=4)
    a = scaling.scale_concept(tiny, inv, "a red circle", omega=5, steps=4, beta="paper")
    b = scaling.scale_concept(tiny, inv, "a red circle", omega=5, steps=4)
    assert a.shape == b.shape and not torch.equal(a, b)
    with pytest.raises(ValueError, match="beta must be"):
        scaling.scale_concept(tiny, inv, "a red circle", omega=5, steps=4, beta="linear")
