"""A few-step training run, so the training script cannot rot (CI never trains for real)."""
import conceptlab
from conceptlab.toy import train


def test_smoke_training_writes_loadable_pipelines_and_resumes(tmp_path):
    args = ["shapes", "--smoke", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "out")]
    train.main(args)
    model = conceptlab.load(str(tmp_path / "out" / "toy-shapes"))
    assert model.toy and model.generate("a red circle", steps=2).size == (32, 32)
    clip = conceptlab.load_clip(str(tmp_path / "out" / "toy-clip"))
    assert clip.zero_shot([model.generate("a red circle", steps=2)], ["a red circle", "a blue square"]).shape == (1, 2)
    train.main(args)                                   # resumes from the finished checkpoints: no error
    unet, text, step = train.load_ema_shapes(tmp_path / "w" / "unet.ckpt")   # what a mid-run reader sees
    assert step == 3                                   # the EMA weights, which the export wrote
    for mine, exported in ((unet, model.pipe.unet), (text, model.pipe.text_encoder)):
        theirs = exported.state_dict()
        assert all(v.equal(theirs[k]) for k, v in mine.state_dict().items())
    assert train.load_ema_shapes(tmp_path / "none.ckpt") is None


def test_training_captions_cover_the_null_prompt():
    import numpy as np
    rng = np.random.default_rng(0)
    caps = [train.training_caption(["red circle", "blue square"], "grass", rng)[0] for _ in range(2000)]
    assert 0.07 < caps.count("") / len(caps) < 0.13
    assert caps.count("a red circle and a blue square on grass") > 800


def test_sound_captions_follow_the_full_share():
    import numpy as np
    import pytest
    kinds = ["siren", "rain", "drum"]
    for full in (0.2, 0.6):
        rng = np.random.default_rng(0)
        caps = [train.sound_caption(kinds, rng, full) for _ in range(3000)]
        n_full = sum(len(c.split(",")) == 2 and " and " in c for c in caps)      # "a x, a y and z": all three
        assert 0.07 < caps.count("") / len(caps) < 0.13
        # every source: the `full` share, plus subsets that drew all three (1/3 of the rest)
        assert abs(n_full / len(caps) - (full + (0.9 - full) / 3)) < 0.03, (full, n_full)
    with pytest.raises(ValueError, match="full"):
        train.sound_caption(kinds, np.random.default_rng(0), 0.95)


def test_word_positions_find_each_named_object_in_caption_order():
    tokens = ["<|startoftext|>", "a</w>", "red</w>", "circle</w>", "and</w>", "a</w>", "red</w>", "square</w>",
              "on</w>", "grass</w>", "<|endoftext|>"]
    assert train.word_positions(tokens, ["red square", "red circle"], [1, 0]) == [(1, 2, 3), (0, 6, 7)]


def test_grounding_loss_is_zero_inside_the_mask_and_large_outside():
    import torch
    objects = torch.zeros(1, 32, 32, dtype=torch.long)
    objects[0, :16, :16] = 1                                          # object 1 fills the top-left quarter
    inside = torch.zeros(1, 16 * 16, 4)
    inside[0, :, 2] = (objects[0, ::2, ::2] == 1).flatten().float()   # token 2 attends only to the object
    outside = torch.zeros(1, 16 * 16, 4)
    outside[0, :, 2] = (objects[0, ::2, ::2] == 0).flatten().float()
    pairs = [(0, 1, 2)]
    assert float(train.grounding_loss({"l": inside}, objects, pairs)) < 1e-6
    assert abs(float(train.grounding_loss({"l": outside}, objects, pairs)) - 1.0) < 1e-6


def test_denoising_loss_weighs_object_pixels_and_keeps_its_scale():
    import torch
    objects = torch.zeros(2, 32, 32, dtype=torch.long)
    objects[:, :16, :16] = 1                                          # an object on the top-left quarter
    noise, snr = torch.zeros(2, 4, 16, 16), torch.tensor([0.5, 20.0])
    on, off = noise.clone(), noise.clone()
    on[:, :, :8, :8] = 1.0                                            # the same error on the object ...
    off[:, :, 8:, 8:] = 1.0                                           # ... or on as much background
    plain = [float(train.denoising_loss(e, noise, snr)) for e in (on, off)]
    assert abs(plain[0] - plain[1]) < 1e-6                            # no weight: a pixel is a pixel
    assert abs(plain[0] - 0.25 * (1 + 5 / 20) / 2) < 1e-6             # min-SNR-5: the SNR-20 sample counts 5/20
    weighed = [float(train.denoising_loss(e, noise, snr, objects, 3.0)) for e in (on, off)]
    assert abs(weighed[0] / weighed[1] - 4.0) < 1e-5                  # an object pixel counts 1 + 3 times
    everywhere = torch.ones_like(noise)                               # the mean weight is 1: a uniform error
    assert abs(float(train.denoising_loss(everywhere, noise, snr, objects, 3.0))
               - float(train.denoising_loss(everywhere, noise, snr))) < 1e-6


def test_contrastive_loss_takes_hard_negatives_without_a_positive():
    import torch
    import torch.nn.functional as F
    torch.manual_seed(0)
    logits, target = torch.randn(4, 4), torch.eye(4)
    target[0, 1] = 1                                                  # text 1 describes images 0 and 1
    clip = 0.5 * (F.cross_entropy(logits, target / target.sum(1, keepdim=True))
                  + F.cross_entropy(logits.T, target.T / target.T.sum(1, keepdim=True)))
    assert torch.allclose(train.contrastive_loss(logits, target), clip)   # every text has a positive: CLIP's loss
    hard = torch.cat([target, torch.zeros(4, 1)], 1)                  # a fifth text that describes no image
    low, high = (train.contrastive_loss(torch.cat([logits, torch.full((4, 1), v)], 1), hard) for v in (-5.0, 5.0))
    assert torch.isfinite(low) and torch.isfinite(high)
    assert high > low > clip                                          # a negative the images must score low


def test_swap_shapes_swaps_one_named_shape_word_per_caption():
    import numpy as np
    from conceptlab.toy import vocab
    tokens = train.Tokens(vocab.tokenizer())
    caps = ["a red circle and a blue square", "grass", "a yellow triangle on sand"]
    ids = tokens(caps)
    pairs = [(0, 1, 2), (0, 1, 3), (0, 2, 6), (0, 2, 7), (2, 1, 2), (2, 1, 3)]   # (row, object, colour/shape position)
    shape_ids = tokens.tok.convert_tokens_to_ids([f"{s}</w>" for s in train.shapes.SHAPES])
    before = ids.clone()
    rows, swapped, objects = train.swap_shapes(ids, pairs, shape_ids, np.random.default_rng(0), n=5)
    assert rows == [0, 2] and objects == [1, 1] and ids.equal(before)       # captions naming no object are left out
    for r, j in enumerate(rows):
        changed = (swapped[r] != ids[j]).nonzero().flatten().tolist()
        assert changed == [3] and int(swapped[r, 3]) in shape_ids           # only the first shape word, to a shape
    assert train.swap_shapes(ids, pairs, shape_ids, np.random.default_rng(0), n=1)[0] == [0]
    picked = set()                                   # which="random": either named object of the first caption
    for seed in range(20):
        rows, swapped, objects = train.swap_shapes(ids, pairs, shape_ids, np.random.default_rng(seed), n=1,
                                                   which="random")
        at = 3 if objects == [1] else 7
        assert (swapped[0] != ids[0]).nonzero().flatten().tolist() == [at] and int(swapped[0, at]) in shape_ids
        picked.add(objects[0])
    assert picked == {1, 2}


def test_shape_swap_loss_ranks_the_true_caption_first():
    import torch
    torch.manual_seed(0)
    noise = torch.randn(2, 4, 16, 16)
    masks = torch.zeros(2, 1, 16, 16)
    masks[:, :, 4:8, 4:8] = 1
    close, far = noise + 0.1, noise + 1.0
    good, bad = train.shape_swap_loss(close, far, noise, masks), train.shape_swap_loss(far, close, noise, masks)
    assert good < 0.01 and bad > 8.0                                  # softplus(10 x -0.98), softplus(10 x 0.98)
    outside = far.clone()
    outside[:, :, 4:8, 4:8] = close[:, :, 4:8, 4:8]                   # errors off the object do not count
    assert torch.allclose(train.shape_swap_loss(close, outside, noise, masks), torch.log(torch.tensor(2.0)))


def test_smoke_training_on_world_v2_knows_its_new_words(tmp_path):
    import json

    import numpy as np

    args = ["shapes", "--smoke", "--world-version", "2", "--object-weight", "3", "--clip-hard-negatives", "0.5",
            "--shape-swap", "4", "--null-twin", "0.1", "--null-locality", "1", "--eot-grounding", "0.1",
            "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "out")]
    train.main(args)
    assert json.loads((tmp_path / "out" / "toy-shapes" / "TRAINING.json").read_text())["world_version"] == 2
    model = conceptlab.load(str(tmp_path / "out" / "toy-shapes"))
    assert len(model.pipe.tokenizer("a big purple diamond", add_special_tokens=False).input_ids) == 4
    data = train.world_data(64, tmp_path / "w", train.shapes.V2)
    empty = [i for i, labels in enumerate(data["labels"]) if not labels]
    assert empty and all(not data["objects"][i].any() for i in empty)      # an empty scene has no object pixels
    assert data["radii"] is not None and np.array_equal(data["objects"], train.world_data(64, tmp_path / "w",
                                                                                            train.shapes.V2)["objects"])


def test_options_are_the_command_defaults_with_named_changes():
    import pytest
    args = train.options(unet_steps=10, shape_swap=4)
    defaults = vars(train.parser().parse_args(["shapes"]))
    assert (args.unet_steps, args.shape_swap) == (10, 4)
    assert {k: v for k, v in vars(args).items() if k not in ("unet_steps", "shape_swap", "command")} == \
        {k: v for k, v in defaults.items() if k not in ("unet_steps", "shape_swap")}
    assert "unet_steps=10" in args.command and train.options(command="mine").command == "mine"
    with pytest.raises(TypeError, match="no option shape_swaps"):      # a misspelt option is refused, not ignored
        train.options(shape_swaps=4)


def test_shape_swap_without_the_worlds_shapes_is_refused_at_the_door(tmp_path):
    import pytest
    import torch
    args = train.options(shape_swap=4)
    with pytest.raises(ValueError, match="shape_words"):
        train.train_unet(torch.zeros(2, 3, 32, 32), None, None, None, None, None, args, tmp_path,
                         objects=torch.zeros(2, 32, 32))


def test_an_option_the_world_does_not_read_is_refused(capsys):
    import pytest
    for argv, says in ((["shapes", "--empty-captions", "0.02"], "--world-version 2"),
                       (["sounds", "--shape-swap", "4"], "toy-shapes' only")):
        with pytest.raises(SystemExit):
            train.main(argv + ["--smoke"])
        assert says in capsys.readouterr().err


def test_end_of_text_grounding_ties_the_first_end_of_text_token_to_every_object():
    import torch
    objects = torch.zeros(2, 32, 32, dtype=torch.long)
    objects[0, :16, :16], objects[0, 16:, 16:] = 1, 2                 # scene 0: two objects; scene 1: empty
    union = (objects[0, ::2, ::2] > 0).flatten().float()
    eos = 9
    ids = torch.tensor([[8, 5, 6, eos, eos], [8, eos, eos, eos, eos]])   # scene 0's caption ends at 3
    on_objects, on_one, elsewhere = (torch.zeros(2, 16 * 16, 5) for _ in range(3))
    on_objects[0, :, 3] = union
    on_one[0, :, 3] = (objects[0, ::2, ::2] == 1).flatten().float()
    elsewhere[0, :, 3] = 1 - union
    elsewhere[0, :, 4] = union                                        # a later end-of-text token does not count
    for maps in (on_objects, on_one, elsewhere):
        maps[1] = 1.0                                                 # the empty scene is left out
    loss = lambda maps: float(train.end_of_text_grounding_loss({"l": maps}, objects, ids, eos))  # noqa: E731
    assert loss(on_objects) < 1e-6 and loss(on_one) < 1e-6            # any share of the objects is inside
    assert abs(loss(elsewhere) - 1.0) < 1e-6
    assert float(train.end_of_text_grounding_loss({"l": elsewhere}, torch.zeros_like(objects), ids, eos)) == 0.0


def test_the_null_side_without_shape_swap_is_refused_at_the_door(tmp_path):
    import pytest
    import torch
    for args in (train.options(null_twin=0.1), train.options(null_locality=1.0)):
        with pytest.raises(ValueError, match="set shape_swap"):
            train.train_unet(torch.zeros(2, 3, 32, 32), None, None, None, None, None, args, tmp_path,
                             objects=torch.zeros(2, 32, 32), shape_words=("circle", "square"))


def test_null_locality_counts_only_where_nothing_is_named():
    import torch
    pred = torch.zeros(2, 4, 8, 8)
    unnamed = torch.ones(2, 1, 8, 8)
    unnamed[:, :, :4] = 0                                   # the top half holds the named object
    named_only = pred.clone()
    named_only[:, :, :4] = 3.0                              # "" differs only on the named object: no loss
    assert float(train.null_locality_loss(pred, named_only, unnamed)) == 0.0
    everywhere = pred + 2.0
    assert abs(float(train.null_locality_loss(pred, everywhere, unnamed)) - 4.0) < 1e-6
    half = unnamed.clone()
    half[1] = 0.5                                           # a pixel half covered counts half, the mean stays
    assert abs(float(train.null_locality_loss(pred, everywhere, half)) - 4.0) < 1e-6
