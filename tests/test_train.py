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
    assert (tmp_path / "w" / "unet.ckpt").exists()


def test_training_captions_cover_the_null_prompt():
    import numpy as np
    rng = np.random.default_rng(0)
    caps = [train.training_caption(["red circle", "blue square"], "grass", rng) for _ in range(2000)]
    assert 0.07 < caps.count("") / len(caps) < 0.13
    assert caps.count("a red circle and a blue square on grass") > 800
