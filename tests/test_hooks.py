import pytest
import torch

from conceptlab import hooks


def test_recorder_restores_the_very_processors_even_after_an_exception(tiny):
    before = dict(tiny.unet.attn_processors)
    with pytest.raises(RuntimeError, match="boom"):
        with hooks.AttentionRecorder(tiny):
            raise RuntimeError("boom")
    after = tiny.unet.attn_processors
    assert before.keys() == after.keys() and all(before[k] is after[k] for k in before)


def test_records_every_layer_per_step_with_head_mean(tiny):
    layers = hooks.attention_layers(tiny.unet)
    with hooks.AttentionRecorder(tiny) as rec:
        tiny.generate("a red circle", steps=3, guidance=3.0)
    assert rec.cache.steps == [0, 1, 2]
    assert set(rec.cache.layers()) == set(layers)
    name = next(n for n, k in layers.items() if k == "cross" and n.startswith("down_blocks.0"))
    a = rec.cache[(0, name, "cross")]
    assert a.shape == (2, 256, 32)                                  # [uncond, cond] x 16*16 queries x 32 tokens
    assert torch.allclose(a.sum(-1), torch.ones(2, 256), atol=1e-4)  # rows are distributions


def test_recording_does_not_change_the_output(tiny):
    plain = tiny.generate("a blue square", steps=3, seed=0, output="pt")
    with hooks.AttentionRecorder(tiny):
        recorded = tiny.generate("a blue square", steps=3, seed=0, output="pt")
    assert torch.allclose(plain, recorded, atol=1e-4)


def test_filters_running_mean_and_resolution(tiny):
    with hooks.AttentionRecorder(tiny, layers=r"^up_blocks", kind="self", steps=range(1, 3), half="cond",
                                 resolution=8, running_mean=True) as rec:
        tiny.generate("a red circle", steps=4, guidance=3.0)
    assert all(k[0] == "mean" and k[2] == "self" and k[1].startswith("up_blocks") for k in rec.cache.keys())
    assert all(v.shape == (1, 64, 64) for v in rec.cache.entries.values())
    assert set(rec.cache.counts.values()) == {2}


def test_nested_recorders_both_record(tiny):
    with hooks.AttentionRecorder(tiny, kind="cross") as outer:
        with hooks.AttentionRecorder(tiny, kind="cross", layers=r"^mid_block") as inner:
            tiny.generate("a red circle", steps=2)
    assert len(inner.cache) == 2 and len(outer.cache) == 2 * len(outer.layers)


def test_editing_one_token_changes_the_image(tiny):
    plain = tiny.generate("a red circle", steps=3, seed=0, output="pt")
    with hooks.AttentionEditor(tiny, token=3, scale=5.0):
        edited = tiny.generate("a red circle", steps=3, seed=0, output="pt")
    assert not torch.allclose(plain, edited, atol=1e-3)


def test_bad_filters_are_named(tiny):
    with pytest.raises(ValueError, match="no attention layer matches"):
        hooks.AttentionRecorder(tiny, layers="nope")
    with pytest.raises(ValueError, match="kind"):
        hooks.AttentionRecorder(tiny, kind="x")


def test_trajectory_of_a_guided_generation(tiny):
    with hooks.TrajectoryRecorder(tiny) as traj:
        tiny.generate("a red circle", steps=4, guidance=3.0, callback_on_step_end=traj.callback)
    assert len(traj.steps) == 4 and set(traj.steps[0].branches) == {"uncond", "cond"}
    assert [s.t for s in traj.steps] == sorted((s.t for s in traj.steps), reverse=True)
    s0 = traj.steps[0]                                   # eps is the pipeline's guided mix, w = 3
    assert torch.allclose(s0.eps, s0.branches["uncond"] + 3.0 * (s0.branches["cond"] - s0.branches["uncond"]))
    assert torch.allclose(traj.steps[1].z, s0.z_next)    # one step's result is the next one's start
    assert traj.decoded(3).shape == (1, 3, 32, 32)


def test_trajectory_without_guidance_has_one_branch(tiny):
    with hooks.TrajectoryRecorder(tiny) as traj:
        tiny.generate("a red circle", steps=2, guidance=1.0)
    assert [set(s.branches) for s in traj.steps] == [{"cond"}, {"cond"}]


def test_own_loops_report_each_step_once(tiny):
    from conceptlab import inversion
    from conceptlab.worlds import shapes

    s = shapes.scene("heldout", 0)
    with hooks.TrajectoryRecorder(tiny) as traj:
        inv = inversion.invert(tiny, s.image, s.caption, steps=3)
        inversion.sample(tiny, inv.z_T, tiny.encode_text(s.caption), steps=3, guidance=2.0)
    assert [st.stage for st in traj.steps] == ["invert"] * 3 + ["sample"] * 3
    assert set(traj.stage("sample")[0].branches) == {"uncond", "cond"}
    assert torch.equal(traj.stage("invert")[0].z, inv.latents[:1])


def test_cache_accessors(tiny):
    with hooks.AttentionRecorder(tiny, prompt="a red circle on grass") as rec:
        tiny.generate("a red circle on grass", steps=2, guidance=3.0)
    assert rec.cache.tokens[:4] == ["<|startoftext|>", "a", "red", "circle"]
    m = rec.cache.token_map("circle")
    assert m.shape == (16, 16)                                 # the finest grid (16x16 layers)
    assert torch.allclose(m, rec.cache.token_map(3))
    one = rec.cache.token_map("circle", steps=[1], layers=r"^down_blocks\.0")
    direct = rec.cache[(1, "down_blocks.0.attentions.0.transformer_blocks.0.attn2", "cross")][1, :, 3].view(16, 16)
    assert torch.allclose(one, direct)                         # the conditional half, one layer, one step
    assert rec.cache.maps("cross", size=4).shape == (2 * len(rec.cache.layers("cross")), 16, 32)
    p = rec.cache.pixel_map(5, 7)
    assert p.shape == (16, 16) and abs(float(p.sum()) - 1) < 1e-5
    with pytest.raises(KeyError, match="square"):
        rec.cache.token_map("square")
    with pytest.raises(ValueError, match="different resolutions"):
        rec.cache.maps("cross")


def test_everything_mode_keeps_heads_and_grows_with_steps_while_running_mean_does_not(tiny):
    sizes = {}
    for steps in (2, 4):
        with hooks.AttentionRecorder(tiny, heads="all") as every, hooks.AttentionRecorder(tiny, running_mean=True) as mean:
            tiny.generate("a red circle", steps=steps, guidance=3.0)
        sizes[steps] = (every.cache.nbytes(), mean.cache.nbytes())
    assert sizes[4][0] == 2 * sizes[2][0] and sizes[4][1] == sizes[2][1]
    name = "mid_block.attentions.0.transformer_blocks.0.attn1"
    assert every.cache[(0, name, "self")].shape == (2, 4, 16, 16)   # batch, 4 heads, 4x4 queries and keys


def test_processor_it_cannot_reproduce_is_refused_and_nothing_changes(tiny):
    from diffusers.models.attention_processor import AttnAddedKVProcessor

    before = dict(tiny.unet.attn_processors)
    name = next(iter(before))
    procs = dict(before)
    procs[name] = AttnAddedKVProcessor()
    tiny.unet.set_attn_processor(dict(procs))
    try:
        with pytest.raises(ValueError, match="AttnAddedKVProcessor"):
            with hooks.AttentionRecorder(tiny):
                pass
        assert tiny.unet.attn_processors[name] is procs[name]
    finally:
        tiny.unet.set_attn_processor(dict(before))


@pytest.mark.parametrize("backbone", ["sd2", "sdxl"])
def test_backbones_record_and_restore(backbone):
    from conceptlab.models import Model
    from conceptlab.toy import tiny as tiny_pipes

    model = Model(getattr(tiny_pipes, backbone)(), f"tiny-{backbone}")
    before = dict(model.unet.attn_processors)
    plain = model.generate("a red circle", steps=2, guidance=3.0, output="pt")
    with hooks.AttentionRecorder(model, prompt="a red circle") as rec, hooks.TrajectoryRecorder(model) as traj:
        out = model.generate("a red circle", steps=2, guidance=3.0, output="pt")
    assert torch.allclose(plain, out, atol=1e-4)
    assert set(rec.cache.layers()) == set(hooks.attention_layers(model.unet))
    h, w = model.latent_shape[1:]
    assert rec.cache.token_map("circle").shape == rec.cache.finest("cross") and rec.cache.finest("self")[0] <= h
    assert len(traj.steps) == 2 and set(traj.steps[0].branches) == {"uncond", "cond"}
    assert all(before[k] is v for k, v in model.unet.attn_processors.items())


def test_audioldm2_unet_two_text_streams_on_a_non_square_grid():
    from conceptlab.toy import tiny as tiny_pipes

    unet = tiny_pipes.audioldm2_unet()
    kinds = hooks.attention_layers(unet)
    assert kinds["down_blocks.1.attentions.0.transformer_blocks.0.attn2"] == "self"    # AudioLDM 2's double self-attention
    z = torch.randn(2, 4, 16, 8, generator=torch.Generator().manual_seed(0))           # time x frequency
    a, b = torch.randn(2, 5, 16), torch.randn(2, 7, 32)
    plain = unet(z, 10, encoder_hidden_states=a, encoder_hidden_states_1=b).sample
    with hooks.AttentionRecorder(unet) as rec:
        out = unet(z, 10, encoder_hidden_states=a, encoder_hidden_states_1=b).sample
    assert torch.allclose(plain, out, atol=1e-5)
    gpt = rec.cache[(0, "down_blocks.1.attentions.1.transformer_blocks.0.attn2", "cross")]
    t5 = rec.cache[(0, "down_blocks.1.attentions.2.transformer_blocks.0.attn2", "cross")]
    assert gpt.shape == (2, 32, 5) and t5.shape == (2, 32, 7)       # 8x4 grid; 5 and 7 text positions
    assert rec.cache.grids["down_blocks.1.attentions.1.transformer_blocks.0.attn2"] == (8, 4)
    assert rec.cache.token_map(2, layers=r"attentions\.1\.").shape == (8, 4)


def test_editor_by_word_on_the_conditional_half_only(tiny):
    seen = []

    class Probe(hooks.AttentionHook):                    # a listener after the editor sees the edited probabilities
        def _listen(self, name, kind, probs):
            seen.append(probs.detach().clone())

    with hooks.AttentionRecorder(tiny, kind="cross", layers=r"^mid_block") as plain:
        tiny.generate("a red circle", steps=1, guidance=3.0)
    with hooks.AttentionEditor(tiny, "circle", prompt="a red circle", value=0.0, half="cond", layers=r"^mid_block"):
        with Probe(tiny, kind="cross", layers=r"^mid_block"):
            tiny.generate("a red circle", steps=1, guidance=3.0)
    a = seen[0]                                          # (2, heads, Q, K): [uncond, cond]
    assert torch.all(a[1, :, :, 3] == 0) and torch.all(a[0, :, :, 3] > 0)
    assert torch.allclose(a[0].mean(0), plain.cache[(0, "mid_block.attentions.0.transformer_blocks.0.attn2", "cross")][0])
    with pytest.raises(ValueError, match="not among the prompt's tokens"):
        hooks.AttentionEditor(tiny, "square", prompt="a red circle", scale=2.0)
    with pytest.raises(ValueError, match="also pass the prompt"):
        hooks.AttentionEditor(tiny, "circle", scale=2.0)


def test_recorders_take_a_bare_diffusers_pipeline(tiny_pipe):
    with hooks.AttentionRecorder(tiny_pipe, kind="cross", prompt="a red circle") as rec, \
            hooks.TrajectoryRecorder(tiny_pipe) as traj:
        tiny_pipe("a red circle", num_inference_steps=2, guidance_scale=4.0, height=32, width=32, output_type="pt",
                  callback_on_step_end=traj.callback)
    assert rec.cache.steps == [0, 1] and rec.cache.token_map("circle").shape == (16, 16)
    s = traj.steps[0]
    assert torch.allclose(s.eps, s.branches["uncond"] + 4.0 * (s.branches["cond"] - s.branches["uncond"]))
    assert traj.decoded(1).shape == (1, 3, 32, 32)


def test_audioldm2_pipeline_attention_and_trajectory():
    """The real AudioLDM2Pipeline (tiny, random, built in code with word-level tokenizers over the toy
    vocabulary): recording through pipe(...), two text streams, a time x frequency latent grid."""
    from conceptlab.toy import tiny as tiny_pipes

    pipe = tiny_pipes.audioldm2()
    pipe.set_progress_bar_config(disable=True)
    before = dict(pipe.unet.attn_processors)
    run = dict(num_inference_steps=2, audio_length_in_s=0.16, guidance_scale=3.0)
    plain = pipe("a red circle", generator=torch.Generator().manual_seed(0), **run).audios
    with hooks.AttentionRecorder(pipe, kind="cross") as rec, hooks.TrajectoryRecorder(pipe, guidance=3.0) as traj:
        out = pipe("a red circle", generator=torch.Generator().manual_seed(0), **run).audios
    assert torch.allclose(torch.as_tensor(plain), torch.as_tensor(out), atol=1e-4)
    assert all(before[k] is v for k, v in pipe.unet.attn_processors.items())
    gpt_layer, t5_layer = ("down_blocks.1.attentions.1.transformer_blocks.0.attn2",
                           "down_blocks.1.attentions.2.transformer_blocks.0.attn2")
    assert rec.cache[(0, gpt_layer, "cross")].shape[-1] == 8          # GPT-2's 8 generated vectors
    h, w = rec.cache.grids[t5_layer]
    assert h != w and rec.cache[(0, t5_layer, "cross")].shape[1] == h * w
    assert len(traj.steps) == 2 and set(traj.steps[0].branches) == {"uncond", "cond"}
    s = traj.steps[0]
    assert torch.allclose(s.eps, s.branches["uncond"] + 3.0 * (s.branches["cond"] - s.branches["uncond"]))
