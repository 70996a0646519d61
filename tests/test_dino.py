"""DINO features for ConceptExpress's Table 1 on real models, tested on tiny random ViT / DINOv2 built here."""
import numpy as np
import pytest
import torch
from PIL import Image

import conceptlab
from conceptlab import metrics


def _tiny(tmp_path, kind: str):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model, ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
                 patch_size=8)
    if kind == "vit":                                 # DINO v1 (facebook/dino-vits16) is a ViTModel
        model, proc = ViTModel(ViTConfig(**small)), ViTImageProcessor(size={"height": 32, "width": 32})
    else:                                             # DINOv2: resize the short side, then center-crop
        model = Dinov2Model(Dinov2Config(**small))
        proc = BitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32},
                                 image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    folder = tmp_path / kind
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


def _images(n=3, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.mark.parametrize("kind", ["vit", "dinov2"])
def test_dino_features_are_the_cls_token_unit_norm(tmp_path, kind):
    dino = conceptlab.load_dino(str(_tiny(tmp_path, kind)))
    assert dino.size == (32, 32) and dino.resize == ((32, 32) if kind == "vit" else (40, 40))
    ims = _images()
    f = dino.image_features(ims)
    assert f.shape == (3, 32)
    assert torch.allclose(f.norm(dim=-1), torch.ones(3), atol=1e-5)
    cls = dino.model(pixel_values=dino.pixels(ims)).last_hidden_state[:, 0]
    assert torch.allclose(f, torch.nn.functional.normalize(cls, dim=-1), atol=1e-6)
    assert torch.equal(f, dino.image_features(ims))                   # deterministic
    assert not torch.allclose(f[0], f[1], atol=1e-3)                   # different images, different features


def test_pixels_match_the_image_processor_at_native_size(tmp_path):
    dino = conceptlab.load_dino(str(_tiny(tmp_path, "vit")))
    ims = _images()
    ours = dino.pixels(ims)
    theirs = dino.processor(images=ims, return_tensors="pt").pixel_values
    assert ours.shape == theirs.shape and torch.allclose(ours, theirs, atol=1e-5)


def test_center_crop_keeps_the_middle(tmp_path):
    dino = conceptlab.load_dino(str(_tiny(tmp_path, "dinov2")))
    x = torch.full((1, 3, 40, 40), -1.0)
    x[..., 4:36, 4:36] = 1.0                          # white inside the 32 x 32 center, black border
    p = dino.pixels(x)
    white = (1.0 - dino.mean) / dino.std
    assert p.shape == (1, 3, 32, 32) and torch.allclose(p, white.expand_as(p), atol=1e-5)


def test_concept_scores_take_dino_features(tmp_path):
    dino = conceptlab.load_dino(str(_tiny(tmp_path, "vit")))
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    masks = np.zeros((2, 32, 32), bool)
    masks[0, :, :16], masks[1, :, 16:] = True, True
    regions = [metrics.masked_region(image, m) for m in masks]
    gens = [torch.cat([r] * 2) for r in regions]       # each concept "generates" its own region exactly
    s = metrics.concept_scores(dino, [(image, masks)], [gens], [torch.cat([image] * 2)])
    assert s["sim_i"] == pytest.approx(1.0, abs=1e-5) and s["sim_c"] == pytest.approx(1.0, abs=1e-5)
    assert s["acc_1"] == 1.0


def test_bad_names_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="no embedded DINO.*load_clip"):
        conceptlab.load_dino("toy-clip")
    with pytest.raises(ValueError, match="hub id"):
        conceptlab.load_dino("")
    with pytest.raises(ValueError, match="not a vision transformer.*load_clip"):
        conceptlab.load_dino(str(conceptlab.models.EMBEDDED / "toy-clip"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(conceptlab.ModelNotAvailableError, match="facebook/dino-nowhere"):
        conceptlab.load_dino("facebook/dino-nowhere")
