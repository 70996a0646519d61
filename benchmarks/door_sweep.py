"""A sweep of bad and unusual inputs across the public API, as a new user would try them (issue 29's method).

    .venv/bin/python benchmarks/door_sweep.py                   # writes results/door_sweep.json (about 1 minute)
    PYTHONPATH=<an older checkout> .venv/bin/python benchmarks/door_sweep.py --out old.json   # the same sweep there

Each case says what should happen: "error" (refused) or "accept" (a valid input, run as asked; "warn" when it
should be accepted with a warning). Its outcome is classed:
- door: refused by a ValueError, TypeError, KeyError or FileNotFoundError raised in conceptlab's own code;
- deep: refused from inside torch, diffusers, numpy or another library, or by another kind of exception;
- silent: an input that should be refused ran to the end (or one that should warn did so without a word);
- accepted: a valid input ran (with its warning where one is due).
"""
from __future__ import annotations

import json
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch

CASES = []


def case(category: str, expect: str):
    def wrap(fn):
        CASES.append((category, fn.__name__, expect, fn))
        return fn
    return wrap


M = {}


def toy():
    import conceptlab

    if "toy" not in M:
        M["toy"] = conceptlab.load("toy-shapes")
    return M["toy"]


def scene_image(i=0):
    from conceptlab.worlds import shapes

    return shapes.scene("heldout", i).image


def inv():
    from conceptlab import inversion

    if "inv" not in M:
        M["inv"] = inversion.invert(toy(), scene_image(), "a red circle", steps=4)
    return M["inv"]


# ------------------------------------------------------------------ loading
@case("loading", "error")
def load_a_missing_relative_folder():
    import conceptlab
    conceptlab.load("./no_such_folder/")


@case("loading", "error")
def load_clip_with_an_image_model_folder():
    import conceptlab
    conceptlab.load_clip(str(Path(conceptlab.__file__).parent / "toy" / "weights" / "toy-shapes"))


@case("loading", "error")
def load_with_device_as_a_number_string():
    import conceptlab
    conceptlab.load("toy-shapes", device="cuda:x")


# ------------------------------------------------------------------ numbers
@case("numbers", "error")
def gamma_negative():
    from conceptlab import scaling
    scaling.scale_concept(toy(), inv(), "a red circle", omega=3, gamma=-1, steps=4)


@case("numbers", "error")
def t_exit_beyond_the_steps():
    from conceptlab import scaling
    scaling.scale_concept(toy(), inv(), "a red circle", omega=3, t_exit=9, steps=4)


@case("numbers", "error")
def steps_zero():
    toy().generate("a red circle", steps=0)


@case("numbers", "error")
def steps_as_float():
    toy().generate("a red circle", steps=2.5)


@case("numbers", "error")
def renoise_steps_negative():
    from conceptlab import inversion
    inversion.invert(toy(), scene_image(), "a red circle", steps=2, method="renoise", renoise_steps=-1)


@case("numbers", "accept")
def omega_as_numpy_float():
    from conceptlab import scaling
    scaling.scale_concept(toy(), inv(), "a red circle", omega=np.float64(2), steps=4)


@case("numbers", "error")
def n_max_zero():
    from conceptlab import express
    express.localize(toy(), scene_image(), n_max=0)


@case("numbers", "error")
def delta_factor_negative():
    from conceptlab import express
    express.localize(toy(), scene_image(), delta_factor=-1)


@case("numbers", "error")
def linking_unknown():
    from conceptlab import express
    express.localize(toy(), scene_image(), linking="single")


@case("numbers", "error")
def learn_tokens_steps_zero():
    from conceptlab import express
    m = np.zeros((1, 32, 32), bool)
    m[0, 4:10, 4:10] = True
    express.learn_tokens(toy(), scene_image(), m, steps=0, progress=False)


# ------------------------------------------------------------------ images
@case("images", "error")
def image_rgba():
    from PIL import Image
    from conceptlab import inversion
    inversion.invert(toy(), Image.new("RGBA", (32, 32)), "a red circle", steps=2)


@case("images", "error")
def image_wrong_size():
    from conceptlab import inversion
    inversion.invert(toy(), np.zeros((64, 64, 3), np.uint8), "a red circle", steps=2)


@case("images", "error")
def image_float_array():
    from conceptlab import inversion
    inversion.invert(toy(), np.zeros((32, 32, 3), np.float32), "a red circle", steps=2)


@case("images", "error")
def image_grey_2d_array():
    from conceptlab import inversion
    inversion.invert(toy(), np.zeros((32, 32), np.uint8), "a red circle", steps=2)


@case("images", "error")
def image_tensor_out_of_range():
    from conceptlab import inversion
    inversion.invert(toy(), torch.full((3, 32, 32), 3.0), "a red circle", steps=2)


@case("images", "error")
def image_tensor_nan():
    from conceptlab import inversion
    inversion.invert(toy(), torch.full((3, 32, 32), float("nan")), "a red circle", steps=2)


@case("images", "warn")
def image_tensor_zero_one():
    from conceptlab import inversion
    x = torch.from_numpy(scene_image()).permute(2, 0, 1).float() / 255
    inversion.invert(toy(), x, "a red circle", steps=2)


@case("images", "error")
def image_as_a_path_string():
    from conceptlab import inversion
    inversion.invert(toy(), "picture.png", "a red circle", steps=2)


@case("images", "error")
def oracle_on_a_wrong_size():
    from conceptlab.worlds import oracle
    oracle.presence(np.zeros((7, 7, 3), np.uint8), "red circle")


@case("images", "error")
def oracle_unknown_label():
    from conceptlab.worlds import oracle
    oracle.presence(scene_image(), "purple dragon")


# ------------------------------------------------------------------ prompts
@case("prompts", "error")
def prompt_not_a_string():
    toy().generate(["a red circle", 3], steps=2)


@case("prompts", "error")
def prompt_unknown_word():
    from conceptlab import scaling
    scaling.scale_concept(toy(), scene_image(), "a purple dragon", omega=3, steps=2)


@case("prompts", "error")
def prompt_too_long():
    toy().generate("a red circle " * 20, steps=2)


@case("prompts", "error")
def forward_prompt_unknown_word():
    from conceptlab import scaling
    scaling.scale_concept(toy(), inv(), "a red circle", omega=3, steps=4, forward_prompt="a dragon")


@case("prompts", "error")
def attention_editor_word_not_in_prompt():
    from conceptlab import hooks
    hooks.AttentionEditor(toy(), "blue", prompt="a red circle", scale=2.0)


@case("prompts", "error")
def token_map_word_not_recorded():
    from conceptlab import hooks
    with hooks.AttentionRecorder(toy(), kind="cross", prompt="a red circle") as rec:
        toy().generate("a red circle", steps=2)
    rec.cache.token_map("square")


# ------------------------------------------------------------------ inversions and scaling
@case("scaling", "error")
def reconstruct_not_an_inversion():
    from conceptlab import inversion
    inversion.reconstruct(toy(), torch.zeros(1, 4, 16, 16))


@case("scaling", "error")
def scale_with_other_steps():
    from conceptlab import scaling
    scaling.scale_concept(toy(), inv(), "a red circle", omega=3, steps=6)


@case("scaling", "error")
def load_an_inversion_from_a_missing_file():
    from conceptlab import inversion
    inversion.Inversion.load("/nonexistent/inv.pt")


@case("scaling", "accept")
def renoise_authors_on_a_sound_model():          # 4 x 52 x 16 latents: patches of 4 fit
    import conceptlab
    from conceptlab import inversion
    from conceptlab.worlds import sounds
    sound = conceptlab.load("toy-sounds")
    mix = sounds.mixture("heldout", 0)
    inversion.invert(sound, mix, "a siren", steps=2, method="renoise-authors")


# ------------------------------------------------------------------ express
@case("express", "error")
def localize_a_sound_model():
    import conceptlab
    from conceptlab import express
    express.localize(conceptlab.load("toy-sounds"), np.zeros((32, 32, 3), np.uint8))


@case("express", "error")
def learn_tokens_empty_mask():
    from conceptlab import express
    express.learn_tokens(toy(), scene_image(), np.zeros((1, 32, 32), bool), steps=2, progress=False)


@case("express", "error")
def learn_tokens_masks_of_another_size():
    from conceptlab import express
    express.learn_tokens(toy(), scene_image(), np.ones((1, 16, 16), bool), steps=2, progress=False)


@case("express", "error")
def tokens_load_from_an_empty_folder():
    import tempfile
    from conceptlab import express
    express.ConceptTokens.load(tempfile.mkdtemp())


@case("express", "error")
def redo_with_an_unknown_setting():
    from conceptlab import express
    express.localize(toy(), scene_image()).redo(colour="red")


@case("express", "error")
def finch_k_too_many():
    from conceptlab.express.cluster import finch_k
    finch_k(torch.softmax(torch.randn(5, 4), 1), 9)


@case("express", "error")
def symmetric_kl_of_a_vector():
    from conceptlab.express.cluster import symmetric_kl
    symmetric_kl(torch.rand(10))


# ------------------------------------------------------------------ metrics
@case("metrics", "accept")
def psnr_of_numpy_arrays():
    from conceptlab import metrics
    metrics.psnr(np.zeros((1, 3, 8, 8)), np.zeros((1, 3, 8, 8)))


@case("metrics", "error")
def match_masks_of_other_sizes():
    from conceptlab import metrics
    metrics.match_masks(np.ones((2, 8, 8), bool), np.ones((2, 16, 16), bool))


@case("metrics", "error")
def share_inside_mask_of_wrong_size():
    from conceptlab import metrics
    metrics.share_inside(torch.rand(4, 4), np.ones((3, 5), bool))


@case("metrics", "error")
def frechet_of_one_sample():
    from conceptlab import metrics
    metrics.frechet_distance(torch.rand(1, 8), torch.rand(1, 8))


# ------------------------------------------------------------------ audio
@case("audio", "error")
def waveform_with_nan():
    from conceptlab.audio import as_batch
    as_batch(np.full(4000, np.nan, np.float32))


@case("audio", "error")
def waveform_3d():
    from conceptlab.audio import as_batch
    as_batch(np.zeros((2, 2, 4000), np.float32))


@case("audio", "accept")
def waveform_int16():
    from conceptlab.audio import as_batch
    as_batch(np.zeros(4000, np.int16))


def classify(expect: str, fn) -> tuple[str, str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fn()
        except Exception as e:                                          # noqa: BLE001  (what the user would see)
            frames = traceback.extract_tb(e.__traceback__)
            own = "conceptlab" in Path(frames[-1].filename).parts if frames else False
            clear = isinstance(e, (ValueError, TypeError, KeyError, FileNotFoundError)) and own
            where = f"{type(e).__name__} at {Path(frames[-1].filename).name}:{frames[-1].lineno}: {str(e)[:160]}"
            if expect == "accept" or expect == "warn":
                return ("deep" if not clear else "refused a valid input"), where
            return ("door" if clear else "deep"), where
    warned = any(issubclass(w.category, UserWarning) for w in caught)
    if expect == "error":
        return "silent", "returned" + (" with a warning" if warned else "")
    if expect == "warn" and not warned:
        return "silent", "returned without the warning"
    return "accepted", "returned" + (" with a warning" if warned else "")


def main():
    torch.set_num_threads(1)
    out = Path(sys.argv[sys.argv.index("--out") + 1]) if "--out" in sys.argv else \
        Path(__file__).parent / "results" / "door_sweep.json"
    rows = []
    for category, name, expect, fn in CASES:
        outcome, detail = classify(expect, fn)
        rows.append(dict(category=category, case=name, expect=expect, outcome=outcome, detail=detail))
        print(f"{outcome:22s} {category:9s} {name}: {detail}", flush=True)
    counts = {k: sum(r["outcome"] == k for r in rows) for k in sorted({r["outcome"] for r in rows})}
    print(json.dumps(counts))
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(dict(cases=len(rows), counts=counts, rows=rows), indent=1))


if __name__ == "__main__":
    main()
