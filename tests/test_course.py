"""conceptlab.course: the notebooks' inputs, presence judge and check cells, by model tier."""
import numpy as np
import pytest
import torch
from PIL import Image

from conceptlab import course, hooks
from conceptlab.models import Model
from conceptlab.worlds import shapes


@pytest.fixture(scope="module")
def real(tiny_pipe):
    """The tiny pipeline as a "real" model (not toy): inputs come from images or generation."""
    return Model(tiny_pipe, "tiny-as-real", toy=False, random_weights=True)


def test_fit_resizes_and_centre_crops_and_says_so():
    im = Image.fromarray(np.arange(60 * 40 * 3, dtype=np.uint8).reshape(40, 60, 3))   # 60 wide, 40 high
    out, note = course.fit(im, (32, 32))
    assert out.size == (32, 32) and "60x40 resized and centre-cropped to 32x32" in note
    same, none = course.fit(out, (32, 32))
    assert same.size == (32, 32) and none is None
    with pytest.raises(TypeError, match="expected a path"):
        course.fit(3, (32, 32))
    before = np.asarray(im).copy()
    course.fit(im, (16, 16))
    assert np.array_equal(np.asarray(im), before)                      # the input is not modified


def test_toy_subjects_are_the_worlds_scenes(tiny):
    got = course.subjects(tiny, 3, start=5)
    want = shapes.scenes("heldout", 3, start=5)
    assert [s.caption for s in got] == [s.caption for s in want]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(got, want))
    weak = course.subjects(tiny, 2, kind="weak")
    assert [w.caption for w in weak] == [shapes.weak_scene(i).caption for i in range(2)]
    with pytest.raises(ValueError, match="IMAGES are for real models"):
        course.subjects(tiny, 1, images="x.png")
    with pytest.raises(ValueError, match="kind must be"):
        course.subjects(tiny, 1, kind="photos")


def test_real_subjects_from_a_folder_take_the_folder_as_label(real, tmp_path, capsys):
    for label in ("dog", "cat"):
        (tmp_path / label).mkdir()
        Image.new("RGB", (50, 40), (200, 10, 10)).save(tmp_path / label / "a.png")
    subs = course.subjects(real, 2, images=str(tmp_path))
    assert sorted(s.labels[0] for s in subs) == ["cat", "dog"]
    assert all(s.image.shape == (32, 32, 3) for s in subs) and subs[0].masks.shape == (0, 32, 32)
    assert "resized and centre-cropped to 32x32" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no label"):
        course.subjects(real, 1, images=str(tmp_path / "dog" / "a.png"))
    with pytest.raises(FileNotFoundError, match="no image at"):
        course.subjects(real, 1, images=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        course.subjects(real, 2, images=str(tmp_path), labels=["a", "b", "c"])


def test_real_subjects_are_generated_from_the_papers_prompts(real):
    subs = course.subjects(real, 2, steps=2, verbose=False)
    assert [s.caption for s in subs] == ["a photo of a dog", "a photo of a cat"] and subs[0].image.shape == (32, 32, 3)
    again = course.subjects(real, 2, steps=2, verbose=False)
    assert np.array_equal(subs[0].image, again[0].image)               # seeded
    weak = course.subjects(real, 1, kind="weak", steps=2, verbose=False)
    assert weak[0].caption == "sofa"


def test_at_model_size_scales_the_scene_and_its_masks(tiny):
    class Big:                                              # a model of another native size
        tier, image_size = "real", (64, 96)
    s = shapes.scene("heldout", 4)
    big = course.at_model_size(s, Big())
    assert big.image.shape == (64, 96, 3) and big.masks.shape == (len(s.masks), 64, 96)
    ys, xs = np.mgrid[0:64, 0:96]                                      # scaled 3x to 96x96, 16 rows cropped each side
    assert np.array_equal(big.masks[0], s.masks[0][(ys + 16) // 3, xs // 3])
    assert np.array_equal(big.image, s.image[(ys + 16) // 3, xs // 3])
    assert course.at_model_size(s, tiny) is s                          # toy: the scene itself


def test_check_asserts_where_the_claim_applies(tiny, real, capsys):
    claims = [("a toy claim", 0.5, ">=", 0.8, "toy"), ("a paper claim", 0.9, ">=", 0.8, "toy real")]
    with pytest.raises(AssertionError, match="a toy claim"):
        course.check(tiny, claims)
    assert course.check(real, claims) == {"a toy claim": False, "a paper claim": True}   # random: reported only
    assert "reported, not asserted" in capsys.readouterr().out
    trained = Model(real.pipe, "trained", toy=False)
    assert trained.tier == "real"
    course.check(trained, claims)                                      # the toy claim is only printed
    with pytest.raises(AssertionError, match="a paper claim"):
        course.check(trained, [("a paper claim", 0.5, ">=", 0.8, "toy real")])
    with pytest.raises(ValueError, match="unknown comparison"):
        course.check(tiny, [("x", 1, "=>", 0, "toy")])
    course.check(real, [("a sampled rate", 2 / 3, ">=", 7 / 12, "toy")])          # both to 3 digits
    assert "a sampled rate: 0.667 >= 0.583  holds" in capsys.readouterr().out


def test_presence_needs_a_detector_on_real_models(real):
    with pytest.raises(ValueError, match="needs a detector"):
        course.presence(real, np.zeros((32, 32, 3), np.uint8), "dog")


def test_unrecorded_steps_run_the_fast_processor_and_give_the_same_image(tiny):
    plain = tiny.generate("a red circle", steps=4, seed=1, output="pt")
    calls = []
    with hooks.AttentionRecorder(tiny, kind="self", steps=[3]) as rec:
        procs = [p for p in tiny.unet.attn_processors.values() if isinstance(p, hooks.RecordingProcessor)]
        for p in procs:
            original = p.original
            p.original = lambda *a, _o=original, **k: (calls.append(1), _o(*a, **k))[1]
        recorded = tiny.generate("a red circle", steps=4, seed=1, output="pt")
    assert torch.allclose(plain, recorded, atol=1e-5)
    assert rec.cache.steps == [3] and len(calls) == 3 * len(procs)     # steps 0-2: the original processors


def test_max_resolution_caps_only_the_large_grids(tiny):
    with hooks.AttentionRecorder(tiny, kind="cross", max_resolution=8) as rec:
        tiny.generate("a red circle", steps=2)
    assert set(rec.cache.grids.values()) == {(8, 8), (4, 4)}          # 16x16 layers shrunk, the others kept
    with pytest.raises(ValueError, match="not both"):
        hooks.AttentionRecorder(tiny, resolution=8, max_resolution=8)
    with pytest.raises(ValueError, match="max_resolution must be"):
        hooks.AttentionRecorder(tiny, max_resolution=0)


def test_sample_bound_is_what_a_small_sample_reaches_at_the_benchmarks_rate():
    from scipy.stats import binom

    b = course.sample_bound(0.7, 16)
    k = round(b * 16)
    assert binom.cdf(k - 1, 16, 0.7) < 0.01 <= binom.cdf(k, 16, 0.7)       # below k: rarer than 1 in 100
    assert course.sample_bound(0.7, 16) < course.sample_bound(0.7, 400) < 0.7   # a bigger sample: a tighter bound
    assert course.sample_bound(1.0, 16) == 1.0
    rng = np.random.default_rng(0)
    below = np.mean(rng.binomial(16, 0.7, 20000) / 16 < b)                   # simulated samples fall below it < 1%
    assert below < 0.01
    for bad, match in (((1.2, 16), "rate"), ((0.5, 0), "positive integer"), ((0.5, 16, 0.0), "alpha")):
        with pytest.raises(ValueError, match=match):
            course.sample_bound(*bad)
