"""World v2 (issue 28): empty train scenes, objects that touch and overlap with masks of what is visible, 15 kinds,
size words, alt-text captions; the oracle reads it."""
import numpy as np
import pytest
from scipy import ndimage

from conceptlab.toy import train
from conceptlab.worlds import oracle, shapes
from conceptlab.worlds.shapes import V1, V2


def test_v1_is_unchanged_by_the_world_object():
    for i in range(20):
        a, b = shapes.scene("heldout", i), V1.scene("heldout", i)
        assert a.labels == b.labels and np.array_equal(a.image, b.image)


def test_v2_has_fifteen_kinds_and_fixed_splits():
    assert len(V2.labels) == 15 and set(V1.labels) < set(V2.labels)
    assert V2.shapes == V1.shapes and "purple" in V2.colours
    a, b = V2.scene("heldout", 7), V2.scene("heldout", 7)
    assert np.array_equal(a.image, b.image)
    assert not np.array_equal(V2.scene("train", 7).image, a.image)


def test_empty_scenes_only_in_the_train_split():
    train_counts = [len(s.objects) for s in V2.scenes("train", 400)]
    share = train_counts.count(0) / 400
    assert 0.08 < share < 0.22
    assert all(len(s.objects) >= 1 for s in V2.scenes("heldout", 200))
    empty = next(s for s in V2.scenes("train", 50) if not s.objects)
    assert empty.caption == empty.background and np.array_equal(empty.image, shapes.render(empty.background, [])[0])


def test_objects_touch_and_masks_show_only_what_is_visible():
    scenes = V2.scenes("heldout", 200)
    touching = overlapping = 0
    for s in scenes:
        covs = [shapes.coverage(o.shape, o.cx, o.cy, o.r) >= 0.5 for o in s.objects]
        for i in range(len(s.masks)):
            assert s.masks[i].sum() >= V2.min_visible * covs[i].sum()       # each keeps most of itself in view
            for j in range(i + 1, len(s.masks)):
                assert not (s.masks[i] & s.masks[j]).any()                   # a pixel belongs to one object
                if (ndimage.binary_dilation(s.masks[i]) & s.masks[j]).any():
                    touching += 1
                    assert s.objects[i].colour != s.objects[j].colour        # one-colour blobs would merge
                if (covs[i] & covs[j]).any():
                    overlapping += 1
                    assert not (s.masks[i] & covs[j]).any()                  # the later one hides the earlier
    assert touching >= 40 and overlapping >= 20


def test_mask_of_a_hidden_part_follows_the_painting_order():
    a = shapes.ShapeObject("square", "red", 12, 16, 6)
    b = shapes.ShapeObject("circle", "blue", 20, 16, 6)
    image, (ma, mb) = shapes.render("sky", [a, b])
    assert mb.sum() == (shapes.coverage("circle", 20, 16, 6) >= 0.5).sum()
    assert ma.sum() < (shapes.coverage("square", 12, 16, 6) >= 0.5).sum()
    assert tuple(image[16, 20]) == shapes.COLOURS["blue"]


def test_size_words_and_alt_text_captions():
    small, big = (shapes.ShapeObject("circle", "red", 0, 0, r) for r in (4.2, 7.5))
    assert shapes.size_word(small) == "small" and shapes.size_word(big) == "big"
    assert shapes.size_word(shapes.ShapeObject("circle", "red", 0, 0, 5.5)) is None
    assert shapes.caption_for([small, big], "sand", [True, False]) == "a small red circle and a red circle on sand"
    sizes = [o.r for s in V2.scenes("heldout", 300) for o in s.objects]
    said = [shapes.size_word(shapes.ShapeObject("circle", "red", 0, 0, r)) for r in sizes]
    shares = {w: said.count(w) / len(said) for w in ("small", "big", None)}
    assert min(shares.values()) > 0.1 and shares[None] > 0.3           # both words are said, most are middling
    rng = np.random.default_rng(0)
    labels, radii = ["red circle", "blue square", "black triangle"], [4.2, 5.5, 7.5]
    named = [train.alt_text_caption(labels, radii, "sky", rng)[1] for _ in range(2000)]
    every = np.mean([len(k) == 3 for k in named])
    proper = np.mean([0 < len(k) < 3 for k in named])
    assert 0.2 < every < 0.3 and proper > 0.5                # most captions name a proper subset, as alt text does
    caps = [train.alt_text_caption(labels, radii, "sky", rng)[0] for _ in range(500)]
    assert any("small red circle" in c for c in caps) and any("big black triangle" in c for c in caps)
    assert not any("small blue" in c or "big blue" in c for c in caps)   # a middling object is never sized
    for empty in (0.0, 0.10, 0.30):                         # "" on a scene with objects: the `empty` share
        caps = [train.alt_text_caption(labels, radii, "sky", rng, empty=empty)[0] for _ in range(3000)]
        assert abs(caps.count("") / len(caps) - empty) < 0.02, (empty, caps.count(""))
    with pytest.raises(ValueError, match="add up to at most 1"):
        train.alt_text_caption(labels, radii, "sky", rng, empty=0.8, every=0.25)


def test_grounding_finds_words_after_a_size_word():
    tok = train.Tokens(train.vocab.tokenizer())
    caption = "a small red circle and a big black diamond on sky"
    pairs = train.word_positions(tok.words(caption), ["black diamond", "red circle"], [1, 0])
    words = [w.replace("</w>", "") for w in tok.words(caption)]
    assert [(words[c], words[s]) for _, c, s in pairs] == [("red", "circle"), ("black", "diamond")]


def test_the_oracle_reads_v2_scenes():
    found, total, false = 0, 0, 0
    for s in V2.scenes("heldout", 120):
        d = oracle.detect(s.image, world=V2)
        found += sum(d[l] >= 0.5 for l in s.labels)
        total += len(s.labels)
        false += sum(d[l] >= 0.5 for l in V2.labels if l not in s.labels)
    assert found / total >= 0.95 and false / (120 * len(V2.labels) - total) <= 0.01
    with pytest.raises(ValueError, match="purple"):
        oracle.presence(V2.scene("heldout", 0).image, "purple circle")          # v1 has no purple
    square = shapes.render("grass", [shapes.ShapeObject("square", "purple", 16, 16, 6)])[0]
    assert oracle.is_present(square, "purple square", world=V2)
    assert not oracle.is_present(square, "purple circle", world=V2)


def test_the_module_world_is_the_embedded_models():
    import conceptlab

    model = conceptlab.load("toy-shapes")
    assert shapes.world_of(model.training) is shapes.WORLD
    assert conceptlab.models.training_recipe("toy-shapes") == model.training
    with pytest.raises(ValueError, match="toy-sounds"):
        shapes.world_of(conceptlab.models.training_recipe("toy-sounds"))
    assert shapes.LABELS == shapes.WORLD.labels
    a, b = shapes.scene("heldout", 3), shapes.WORLD.scene("heldout", 3)
    assert np.array_equal(a.image, b.image)
    assert shapes.weak_scene(5).labels[0] in shapes.WORLD.labels


def test_world_of_a_recipe():
    assert shapes.world_of({"world_version": 2}) is V2 and shapes.world_of({"seed": 0}) is V1   # before v2: v1
    with pytest.raises(ValueError, match="no training recipe"):
        shapes.world_of(None)
    with pytest.raises(ValueError, match="v9"):
        shapes.world_of({"world_version": 9})
    # a model with no shapes world of its own takes the default given, and a v9 recipe still fails
    assert shapes.world_of(None, default=V2) is V2 and shapes.world_of({"world": "sounds"}, default=V1) is V1
    assert shapes.world_of({"world_version": 2}, default=V1) is V2
    with pytest.raises(ValueError, match="v9"):
        shapes.world_of({"world_version": 9}, default=V1)
    with pytest.raises(ValueError, match="one object"):
        V2.scene("weak", 0, n_objects=2)
