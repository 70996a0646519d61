import pytest

from conceptlab import baselines
from conceptlab.worlds import shapes


def test_ledits_pp_runs_on_the_same_pipeline_and_leaves_it_as_it_was(tiny):
    before = dict(tiny.unet.attn_processors)
    scheduler = tiny.scheduler
    s = shapes.scenes("heldout", 2)
    out = baselines.ledits_pp_add(tiny, [x.image for x in s], ["a red circle", "a blue square"], steps=3)
    assert out.shape == (2, 3, 32, 32) and out.min() >= -1 and out.max() <= 1
    assert all(before[k] is v for k, v in tiny.unet.attn_processors.items()) and tiny.scheduler is scheduler
    with pytest.raises(ValueError, match="one concept per image"):
        baselines.ledits_pp_add(tiny, [s[0].image], ["a red circle", "a blue square"])
    with pytest.raises(ValueError, match="does not know the word"):
        baselines.ledits_pp_add(tiny, [s[0].image], ["a green circle"], steps=2)
