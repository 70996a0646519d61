"""Figures and explorers draw from recorded caches (and the explorer falls back to a static figure)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from conceptlab import hooks, metrics, viz, widgets  # noqa: E402


@pytest.fixture(scope="module")
def recorded(tiny):
    with hooks.AttentionRecorder(tiny, half="cond", prompt="a red circle on grass") as rec, \
            hooks.TrajectoryRecorder(tiny) as traj:
        image = tiny.generate("a red circle on grass", steps=3, guidance=3.0)
    return rec.cache, traj, image


def test_attention_figures(recorded):
    cache, _, image = recorded
    assert len(viz.show_token_maps(cache, ["red", "circle"], image=image).axes) == 3
    layers = cache.layers("cross")
    fig = viz.show_token_per_layer(cache, "circle")
    assert [ax.get_title().split("\n")[1] for ax in fig.axes] == [f"{h}x{w}" for h, w in (cache.grids[n] for n in layers)]
    assert len(viz.show_token_over_steps(cache, "circle", [0, 2]).axes) == 2
    assert len(viz.show_pixel_attention(cache, 3, 4, image=image).axes) == 2
    plt.close("all")


def test_trajectory_strip(recorded):
    _, traj, _ = recorded
    fig = viz.show_trajectory(traj, traj.decoded, every=2)
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["step 0", "step 2"]
    with pytest.raises(ValueError, match="no steps recorded for stage 'invert'"):
        viz.show_trajectory(traj, traj.decoded, stage="invert")
    plt.close("all")


def test_explorer_is_static_without_a_widget_front_end(recorded, monkeypatch):
    cache, _, image = recorded
    monkeypatch.setenv("CONCEPTLAB_STATIC", "1")
    assert not widgets.interactive()
    fig = widgets.attention_explorer(cache, image=image)
    assert len(fig.axes) == len(cache.steps) * (len(cache.layers("cross")) + 1)
    plt.close("all")


def test_share_inside():
    a = torch.zeros(4, 4)
    a[:2, :2] = 1.0
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[:4, :4] = True
    assert metrics.share_inside(a, mask) == pytest.approx(1.0)
    assert metrics.share_inside(torch.ones(4, 4), mask) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="2-D maps"):
        metrics.share_inside(torch.ones(1, 4, 4), mask)
