import numpy as np
import pytest
import torch
from PIL import Image

from conceptlab.worlds import oracle, shapes


def confusion(scenes):
    tp = fp = fn = tn = 0
    for s in scenes:
        for lab in shapes.LABELS:
            p, g = oracle.is_present(s.image, lab), lab in s.labels
            tp += p and g; fp += p and not g; fn += g and not p; tn += not p and not g
    return tp, fp, fn, tn


def test_oracle_on_clean_heldout_scenes():
    tp, fp, fn, tn = confusion(shapes.scenes("heldout", 100))
    assert tp / (tp + fn) >= 0.97          # finds what is there
    assert fp / (fp + tn) <= 0.01          # rarely sees what is not


def test_oracle_reads_every_image_format():
    s = shapes.scene("heldout", 0)
    lab = s.labels[0]
    x = torch.from_numpy(s.image).permute(2, 0, 1).float() / 127.5 - 1
    scores = [oracle.presence(im, lab) for im in (s.image, s.pil(), x)]
    assert max(scores) - min(scores) < 1e-4 and scores[0] >= 0.5


def test_best_blob_is_the_object_itself():
    s = next(s for s in shapes.scenes("heldout", 50) if len(s.objects) == 3)
    for lab, m in zip(s.labels, s.masks):
        score, blob = oracle.best_blob(s.image, lab)
        assert score == oracle.presence(s.image, lab) >= oracle.THRESHOLD
        assert (blob["mask"] & m).sum() >= 0.8 * m.sum()        # the blob covers the object's own mask
    absent = next(c for c in shapes.COLOURS if c not in {o.colour for o in s.objects})
    assert oracle.best_blob(s.image, f"{absent} circle") == (0.0, None)


def test_removing_an_object_removes_it():
    s = next(s for s in shapes.scenes("heldout", 50) if len(s.objects) == 2)
    keep, gone = s.objects
    img, _ = shapes.render(s.background, [keep])
    assert oracle.is_present(img, keep.label) and not oracle.is_present(img, gone.label)


def test_weak_objects_score_lower_than_solid_ones():
    weak = [shapes.weak_scene(i) for i in range(40)]
    solid = [shapes.render(s.background, [shapes.ShapeObject(s.objects[0].shape, s.objects[0].colour, 16, 16, 6)])[0]
             for s in weak]
    w = np.mean([oracle.presence(s.image, s.labels[0]) for s in weak])
    f = np.mean([oracle.presence(img, s.labels[0]) for img, s in zip(solid, weak)])
    assert f > 0.8 and w < f - 0.2


def test_bad_labels_and_images():
    img = shapes.scene("heldout", 0).image
    with pytest.raises(ValueError, match="unknown object"):
        oracle.presence(img, "green circle")
    assert oracle.presence(img, "a red circle") == oracle.presence(img, "red circle")
    with pytest.raises(ValueError, match="mode"):
        oracle.presence(Image.fromarray(img).convert("L"), "red circle")


def test_oracle_reads_larger_images_at_world_size():
    s = shapes.scene("heldout", 4)
    big = s.pil().resize((256, 256), Image.NEAREST)
    for lab in shapes.LABELS:
        assert oracle.is_present(big, lab) == oracle.is_present(s.image, lab)


def test_clean_erase_sees_what_replaced_the_object():
    import numpy as np
    import pytest

    from conceptlab.worlds import oracle, shapes

    s = next(s for s in shapes.scenes("heldout", 50) if len(s.labels) == 2)
    gone = shapes.render(s.background, s.objects[1:])[0]              # the first object painted out
    assert oracle.clean_erase(gone, s.masks[0])
    assert not oracle.clean_erase(s.image, s.masks[0])                # still there
    with pytest.raises(ValueError, match="mask is empty"):
        oracle.clean_erase(s.image, np.zeros((32, 32), bool))
