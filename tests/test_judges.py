"""Ground truth on real models, on random-weight twins built in code: SAM regions (detect.Segmenter), CLAP sound
presence (detect.SoundJudge) and LPIPS (conceptlab.load_lpips). Their plumbing, their doors and their maths;
what they measure on real weights cannot be tested offline."""
import json

import numpy as np
import pytest
import torch

import conceptlab
from conceptlab import detect, metrics, perceptual
from conceptlab.toy import tiny


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return tiny.save_real_shapes(tmp_path_factory.mktemp("judges"), which=("sam", "clap", "lpips"))


@pytest.fixture(scope="module")
def sam(folders):
    return detect.load_segmenter(folders["sam"])


def _image(seed=0, size=96):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, size, size, generator=g) * 2 - 1


def _mask(size=96):
    m = np.zeros((size, size), bool)
    m[20:50, 30:70] = True
    return m


def test_sam_mask_is_prompted_by_points_inside_the_concept(sam, monkeypatch):
    seen = {}
    real = sam.processor.__call__

    def spy(*args, **kw):
        seen.update(kw)
        return real(*args, **kw)

    monkeypatch.setattr(sam, "processor", type("P", (), {"__call__": staticmethod(spy),
                                                          "image_processor": sam.processor.image_processor})())
    image, mask = _image(), _mask()
    before = image.clone()
    out = sam.mask(image, mask, points=3, seed=4)
    assert out.shape == mask.shape and out.dtype == bool
    points = np.array(seen["input_points"][0][0])                                  # (3, xy)
    assert points.shape == (3, 2) and len({tuple(p) for p in points}) == 3          # 3 distinct points
    assert mask[points[:, 1], points[:, 0]].all()                                   # all inside the concept
    assert seen["input_labels"] == [[[1, 1, 1]]]                                    # positive prompts
    assert torch.equal(image, before)                                               # the input is not modified
    assert np.array_equal(sam.mask(image, mask, seed=4), out)                       # same seed, same mask


def test_sam_region_keeps_the_image_inside_its_mask_only(sam):
    image, mask = _image(1), _mask()
    keep = torch.from_numpy(sam.mask(image, mask, seed=0))
    region = sam.region(image, mask, seed=0)
    assert region.shape == image.shape
    assert torch.equal(region[0][:, keep], image[0][:, keep])
    assert (region[0][:, ~keep] == -1).all()


def test_sam_doors(sam):
    image = _image()
    with pytest.raises(ValueError, match="empty"):
        sam.mask(image, np.zeros((96, 96), bool))
    with pytest.raises(ValueError, match="at the image's size"):
        sam.mask(image, np.ones((32, 32), bool))
    with pytest.raises(ValueError, match="positive int"):
        sam.mask(image, _mask(), points=0)


def test_clap_scores_are_zero_shot_probabilities_at_any_sample_rate(folders):
    clap = detect.load_sound_judge(folders["clap"])
    assert clap.sample_rate == 48000
    wave = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0)) * 0.1
    before = wave.clone()
    p = clap.scores(wave, ["a siren", "a drum", "rain"])
    assert p.shape == (2, 3) and torch.allclose(p.sum(1), torch.ones(2), atol=1e-5)
    assert torch.equal(wave, before)
    # the same clip given at 48 kHz scores as the 16 kHz one resampled
    import torchaudio.functional as AF
    same = clap.scores(AF.resample(wave, 16000, 48000), ["a siren", "a drum", "rain"], sample_rate=48000)
    assert torch.allclose(same, p, atol=1e-5)
    assert clap.presence(wave[0], "a siren", ["a drum", "rain"]) == pytest.approx(float(p[0, 0]), abs=1e-6)
    with pytest.raises(ValueError, match="at least two"):
        clap.scores(wave, ["a siren"])
    with pytest.raises(ValueError, match="finite waveforms"):
        clap.scores(torch.full((100,), float("nan")), ["a", "b"])


def test_lpips_loads_the_backbone_into_lpips_own_network(folders):
    lp = conceptlab.load_lpips(folders["lpips"])
    assert lp.net == "alex" and lp.random_weights
    saved = torch.load(f"{folders['lpips']}/alex.pth", weights_only=True)
    for name, p in lp.model.net.named_parameters():                   # slice1.0.weight <- features.0.weight
        assert torch.equal(p, saved["features." + name.split(".", 1)[1]])
    # the distance is lpips' own on those weights: the same numbers as the package's model built directly
    import warnings

    import lpips as package
    with warnings.catch_warnings():                   # lpips builds its backbone with torchvision's old argument
        warnings.simplefilter("ignore", UserWarning)
        direct = package.LPIPS(net="alex", pnet_rand=True, verbose=False)
    direct.net.load_state_dict(lp.model.net.state_dict())
    a, b = _image(0, 64), _image(1, 64)
    assert torch.allclose(lp.distance(a, b), direct(a, b).flatten(), atol=1e-6)
    d = lp.distance(torch.cat([a, b]), a)                              # one image against each of two
    assert d[0] == 0 and d[1] > 0
    assert lp.distance(b, a) == pytest.approx(float(lp.distance(a, b)), abs=1e-6)


def test_lpips_doors(folders, tmp_path):
    lp = conceptlab.load_lpips(folders["lpips"])
    with pytest.raises(ValueError, match="one size"):
        lp.distance(_image(0, 64), _image(0, 32))
    with pytest.raises(ValueError, match="as many on each side"):
        lp.distance(torch.cat([_image(0, 32)] * 3), torch.cat([_image(0, 32)] * 2))
    with pytest.raises(ValueError, match="neither a net name"):
        conceptlab.load_lpips(str(tmp_path))
    (tmp_path / "LPIPS.json").write_text(json.dumps({"net": "resnet"}))
    with pytest.raises(ValueError, match="net must be one of"):
        conceptlab.load_lpips(str(tmp_path))
    (tmp_path / "LPIPS.json").write_text(json.dumps({"net": "alex"}))
    with pytest.raises(FileNotFoundError, match="alex.pth"):
        conceptlab.load_lpips(str(tmp_path))


def test_lpips_by_name_offline_says_how_to_get_the_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    import torchvision

    def offline(**kw):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models, "alexnet", offline)
    with pytest.raises(FileNotFoundError, match="alexnet-owt-7be5be79.pth.*load_lpips"):
        perceptual.load_lpips("alex")


def test_edit_quality_adds_lpips_when_given(folders):
    lp = conceptlab.load_lpips(folders["lpips"])

    class FakeClip:                                   # the CLIP columns are tested elsewhere
        def image_features(self, x):
            return torch.nn.functional.normalize(torch.as_tensor(x).flatten(1)[:, :8].float() + 2, dim=1)

        def score(self, x, prompts):
            return torch.zeros(len(x))

    a = torch.cat([_image(i, 32) for i in range(3)])
    b = torch.cat([_image(i + 5, 32) for i in range(3)])
    plain = metrics.edit_quality(FakeClip(), a, b, ["x"] * 3, FakeClip().image_features(b))
    with_lp = metrics.edit_quality(FakeClip(), a, b, ["x"] * 3, FakeClip().image_features(b), lp)
    assert "lpips" not in plain and with_lp["lpips"] == pytest.approx(float(lp.distance(a, b).mean()))
