"""Interactive explorers (ipywidgets) with a static figure wherever no widget front-end runs.

A widget needs a live front-end (JupyterLab, Notebook, VS Code). Under nbval, in the book build, or when
the environment variable CONCEPTLAB_STATIC=1 is set (the Makefile sets it for both), the explorer draws
one static figure instead of sliders, so executed notebooks always carry a picture.
"""
from __future__ import annotations

import os

import matplotlib.pyplot as plt

from . import viz


def interactive() -> bool:
    """Whether widgets can be shown: an IPython kernel, ipywidgets installed, CONCEPTLAB_STATIC unset."""
    if os.environ.get("CONCEPTLAB_STATIC", "0") not in ("0", "", "false"):
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def static_explorer(cache, token, image=None, steps: list | None = None, size_in: float = 1.2):
    """The explorer's static fallback: rows are steps, columns the cross-attention layers (each at
    its own grid), for one token; plus the image."""
    layers = cache.layers("cross")
    steps = steps or _spread(cache.steps, 4)
    fig, axes = plt.subplots(len(steps), len(layers) + 1, figsize=(size_in * (len(layers) + 1), size_in * len(steps) + 0.4),
                             squeeze=False)
    for r, s in enumerate(steps):
        ax = axes[r, 0]
        ax.axis("off")
        if image is not None and r == 0:
            ax.imshow(viz._as_display(image), interpolation="nearest")
        t = cache.timesteps.get(s)
        ax.set_title(f"step {s}" + (f", t={t:.0f}" if t is not None else ""), fontsize=7)
        for c, name in enumerate(layers):
            viz._heat(axes[r, c + 1], cache.token_map(token, size=cache.grids[name], steps=[s], layers=[name]),
                      viz.short_layer(name) if r == 0 else None)
    fig.suptitle(f"cross-attention of {token!r}: step x layer", fontsize=9)
    fig.tight_layout()
    return fig


def _spread(items: list, n: int) -> list:
    if len(items) <= n:
        return list(items)
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def attention_explorer(cache, image=None, static: bool | None = None):
    """Explore recorded cross-attention by step x layer x token. Sliders in a live notebook; a static
    step x layer grid for the first content word otherwise (static=True forces it)."""
    tokens = cache.tokens or [str(i) for i in range(cache.maps("cross", size=1).shape[-1])]
    words = [t for t in tokens if not t.startswith("<|")]
    first = words[1] if len(words) > 1 else tokens[0]
    if static or (static is None and not interactive()):
        return static_explorer(cache, first if cache.tokens else 1, image=image)
    import ipywidgets as W
    from IPython.display import display

    steps = [s for s in cache.steps]
    step = W.SelectionSlider(options=steps, value=steps[len(steps) // 2], description="step")
    layer = W.Dropdown(options=["all layers"] + cache.layers("cross"), description="layer")
    token = W.Dropdown(options=[(t, i) for i, t in enumerate(tokens)], value=tokens.index(first), description="token")

    def draw(step, layer, token):
        sel = {} if layer.startswith("all") else {"layers": [layer]}
        size = None if layer.startswith("all") else cache.grids[layer]
        fig = viz.show_token_maps(cache, [tokens[token] if cache.tokens else token], image=image, size=size,
                                  steps=[step], **sel)
        plt.show(fig)

    out = W.interactive_output(draw, {"step": step, "layer": layer, "token": token})
    display(W.VBox([W.HBox([step, layer, token]), out]))
    return None


def scaling_explorer(model, inversion, concept: str, omegas=(0.0, 1.0, 3.0, 5.0), static: bool | None = None, **kw):
    """Sliders for omega, gamma and t_exit over one inversion (each change samples again: ~1 s on
    toy-shapes). Static fallback: the images for `omegas` at the default gamma and t_exit."""
    from . import scaling

    if static or (static is None and not interactive()):
        images = scaling.sweep(model, inversion, concept, list(omegas), steps=inversion.steps, **kw)
        return viz.show_images(list(images), [f"omega {o:g}" for o in omegas], size=1.8,
                               suptitle=f'scaling "{concept}" (gamma 3, t_exit 15)')
    import ipywidgets as W
    from IPython.display import display

    omega = W.FloatSlider(value=3.0, min=-3.0, max=8.0, step=0.5, description="omega")
    gamma = W.FloatSlider(value=3.0, min=0.0, max=5.0, step=0.5, description="gamma")
    t_exit = W.IntSlider(value=min(15, inversion.steps), min=0, max=inversion.steps, description="t_exit")
    clamp = W.Checkbox(value=True, description="clamp w >= 0")

    def draw(omega, gamma, t_exit, clamp):
        im = scaling.scale_concept(model, inversion, concept, omega=omega, gamma=gamma, t_exit=t_exit,
                                   steps=inversion.steps, clamp=clamp, **kw)
        plt.show(viz.show_images([im[0]], [f"omega {omega:g}, gamma {gamma:g}, t_exit {t_exit}"], size=2.5))

    out = W.interactive_output(draw, {"omega": omega, "gamma": gamma, "t_exit": t_exit, "clamp": clamp})
    display(W.VBox([W.HBox([omega, gamma]), W.HBox([t_exit, clamp]), out]))
    return None


def n_max_explorer(model, image, values=(4, 6, 10, 16), static: bool | None = None, **kw):
    """ConceptExpress's N_max on a slider: pre-clustering, filter and concepts for each value (~0.2 s each
    on toy-shapes). Static fallback: the phases for each of `values`, one row each."""
    from .express import localize

    if static or (static is None and not interactive()):
        for n in values:
            fig = viz.show_localization(localize(model, image, n_max=n, **kw))
            fig.suptitle(f"N_max = {n}", fontsize=9)
            fig.tight_layout()
        return None
    import ipywidgets as W

    slider = W.IntSlider(value=10, min=2, max=30, description="N_max")
    W.interact(lambda n_max: plt.show(viz.show_localization(localize(model, image, n_max=n_max, **kw))), n_max=slider)
    return None
