import numpy as np
import pytest

from conceptlab.worlds import shapes


def test_same_index_same_scene_and_splits_differ():
    a, b = shapes.scene("train", 7), shapes.scene("train", 7)
    assert np.array_equal(a.image, b.image) and a.caption == b.caption
    h = shapes.scene("heldout", 7)
    assert not np.array_equal(a.image, h.image)


def test_scene_contents_are_consistent():
    for s in shapes.scenes("heldout", 60):
        assert 1 <= len(s.objects) <= 3
        assert len(set(s.labels)) == len(s.labels)                      # distinct objects
        assert s.image.shape == (32, 32, 3) and s.image.dtype == np.uint8
        assert s.caption.endswith(f" on {s.background}")
        for o, m in zip(s.objects, s.masks):
            assert o.phrase in s.caption
            assert m.sum() > 20                                          # visible
            px = s.image[m].astype(float).mean(0)                        # mask pixels carry the colour
            assert np.abs(px - shapes.COLOURS[o.colour]).max() < 40
        total = np.sum(s.masks, axis=0)
        assert total.max() <= 1                                          # masks never overlap


def test_captions():
    objs = [shapes.ShapeObject("circle", "red", 5, 5, 4), shapes.ShapeObject("square", "blue", 20, 20, 4),
            shapes.ShapeObject("triangle", "yellow", 5, 20, 4)]
    assert shapes.caption_for(objs[:1], None) == "a red circle"
    assert shapes.caption_for(objs[:2], "grass") == "a red circle and a blue square on grass"
    assert shapes.caption_for(objs, "sand") == "a red circle, a blue square and a yellow triangle on sand"


def test_all_labels_and_sizes_occur():
    seen = {l for s in shapes.scenes("train", 300) for l in s.labels}
    assert seen == set(shapes.LABELS)
    counts = [len(s.objects) for s in shapes.scenes("train", 300)]
    assert {1, 2, 3} <= set(counts)


@pytest.mark.parametrize("weakness", shapes.WEAKNESSES)
def test_weak_scenes_are_weaker(weakness):
    s = shapes.weak_scene(3, weakness)
    assert s.weakness == weakness and len(s.objects) == 1
    full = shapes.render(s.background, [shapes.ShapeObject(s.objects[0].shape, s.objects[0].colour, 16, 16, 6)])[1][0]
    if weakness in ("faded", "low-contrast"):
        assert s.objects[0].strength < 0.6
    else:
        assert s.masks[0].sum() < full.sum()


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="unknown split"):
        shapes.scene("test", 0)
    with pytest.raises(ValueError, match=">= 0"):
        shapes.scene("train", -1)
    with pytest.raises(ValueError, match="1 to 3"):
        shapes.scene("train", 0, n_objects=4)
    with pytest.raises(KeyError, match="no 'red circle'"):
        s = next(s for s in shapes.scenes("train", 50) if "red circle" not in s.labels)
        s.mask_of("red circle")
