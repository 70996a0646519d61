"""DINO image features, the second feature space of ConceptExpress's Table 1 (SIM^I, ACC^1, ACC^3 with DINO).

    dino = conceptlab.load_dino("facebook/dino-vits16")     # any transformers ViT / DINOv2 checkpoint or folder
    f = dino.image_features(images)                        # (B, D), unit norm: the last layer's CLS token
    metrics.concept_scores(dino, sources, per_concept, composed)   # works with a Dino as with a Clip

No DINO is embedded: on the toy worlds the features come from toy-clip (conceptlab.load_clip("toy-clip")).
Images are PIL images or tensors (B, 3, H, W) in [-1, 1]; they are resized and cropped as the model's image
processor says.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .clip import ImageInput
from .models import from_pretrained, quiet_loading, resolve


class Dino(ImageInput):
    def __init__(self, model, processor, name: str):
        super().__init__(processor)
        self.model, self.processor, self.name = model.eval(), processor, name

    def __repr__(self):
        return f"Dino({self.name!r}, image={self.size})"

    @torch.no_grad()
    def image_features(self, images) -> torch.Tensor:
        """(B, D), unit norm: the CLS token of the last hidden state, (B, 1 + patches, D)[:, 0]."""
        return F.normalize(self.model(pixel_values=self.pixels(images)).last_hidden_state[:, 0], dim=-1)


def load_dino(name: str = "facebook/dino-vits16", device: str = "cpu") -> Dino:
    """A transformers vision transformer (DINO ViT, DINOv2) from a hub id or a folder, with its image processor."""
    import os

    if not isinstance(name, (str, os.PathLike)) or not str(name).strip():
        raise ValueError(f"name must be a hub id such as 'facebook/dino-vits16' or a folder, got {name!r}")
    if str(name).startswith("toy-"):
        raise ValueError(f"there is no embedded DINO ({name!r}); on the toy worlds use conceptlab.load_clip('toy-clip'), "
                         "or pass a DINO checkpoint such as 'facebook/dino-vits16'")
    with quiet_loading():
        from transformers import AutoImageProcessor, AutoModel

        path, local = resolve(name, ("toy-clip",))
        model = from_pretrained(AutoModel, path, local).to(device)
        if model.config.model_type == "clip" or not hasattr(model.config, "patch_size"):
            raise ValueError(f"{name!r} is a {model.config.model_type!r} model, not a vision transformer such as DINO; "
                             "for CLIP features use conceptlab.load_clip")
        processor = from_pretrained(AutoImageProcessor, path, local)
    return Dino(model, processor, str(name))
