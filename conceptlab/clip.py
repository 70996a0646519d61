"""A small face over a transformers CLIPModel: embeddings, CLIP scores and zero-shot classification.

    clip = conceptlab.load_clip("toy-clip")           # embedded, trained on the shapes world
    clip.zero_shot(images, ["a red circle", "a blue square"])   # (B, K) probabilities
    clip.score(images, "a red circle")                # CLIP score, 100 x cosine, per image
Images are PIL images or tensors (B, 3, H, W) in [-1, 1]; they are resized to the model's input size.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from .images import to_tensor
from .models import from_pretrained, quiet_loading, resolve


def _entry(d, key: str):
    """A size entry of an image processor's size dict (a dict in transformers 4, a SizeDict in 5)."""
    return d.get(key) if isinstance(d, dict) else getattr(d, key, None)


class ImageInput:
    """Images -> the pixel values a transformers vision model expects, from its image processor's settings:
    resized (bicubic) to the processor's size (a square of side shortest_edge, or height x width), then
    center-cropped to crop_size when the processor crops. Shared by Clip and Dino."""

    def __init__(self, processor):
        size = processor.size
        side = _entry(size, "shortest_edge")
        self.resize = (side, side) if side else (_entry(size, "height"), _entry(size, "width"))
        crop = processor.crop_size if getattr(processor, "do_center_crop", False) else None
        self.size = (_entry(crop, "height"), _entry(crop, "width")) if crop else self.resize
        if None in self.resize or None in self.size:
            raise ValueError(f"cannot read an input size from the image processor's size {size} and crop {crop}")
        self.mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
        self.std = torch.tensor(processor.image_std).view(1, 3, 1, 1)

    def pixels(self, images) -> torch.Tensor:
        """Images -> normalized pixel values (B, 3, h, w) at the model's input size."""
        x = to_tensor(images, None, "images")
        if tuple(x.shape[-2:]) != self.resize:
            x = F.interpolate(x, size=self.resize, mode="bicubic", align_corners=False).clamp(-1, 1)
        (H, W), (h, w) = self.resize, self.size
        top, left = (H - h) // 2, (W - w) // 2
        x = x[..., top:top + h, left:left + w]
        return (((x + 1) / 2) - self.mean) / self.std


class Clip(ImageInput):
    def __init__(self, model, tokenizer, processor, name: str):
        super().__init__(processor)
        self.model, self.tokenizer, self.processor, self.name = model.eval(), tokenizer, processor, name

    def __repr__(self):
        return f"Clip({self.name!r}, image={self.size})"

    @torch.no_grad()
    def image_features(self, images) -> torch.Tensor:
        """(B, D), unit norm."""
        return F.normalize(_projected(self.model.get_image_features(pixel_values=self.pixels(images))), dim=-1)

    @torch.no_grad()
    def text_features(self, texts: str | list[str]) -> torch.Tensor:
        """(K, D), unit norm."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ValueError(f"texts must be non-empty strings, got {texts!r}")
        ids = self.tokenizer(texts, padding=True, truncation=False, return_tensors="pt")
        if ids.input_ids.shape[1] > self.tokenizer.model_max_length:
            raise ValueError(f"a text is {ids.input_ids.shape[1]} tokens long; {self.name} reads at most "
                             f"{self.tokenizer.model_max_length}")
        return F.normalize(_projected(self.model.get_text_features(**ids)), dim=-1)

    def score(self, images, texts: str | list[str]) -> torch.Tensor:
        """CLIP score 100 * cos(image, text): one text for all images -> (B,); one text per image -> (B,)."""
        img = self.image_features(images)
        txt = self.text_features(texts)
        if txt.shape[0] not in (1, img.shape[0]):
            raise ValueError(f"give one text for all images or one per image: {img.shape[0]} images, {txt.shape[0]} texts")
        return 100 * (img * txt).sum(-1)

    @torch.no_grad()
    def zero_shot(self, images, candidates: list[str]) -> torch.Tensor:
        """Zero-shot classification: (B, K) softmax over the candidates of logit_scale * cos."""
        if isinstance(candidates, str) or len(candidates) < 2:
            raise ValueError(f"zero-shot needs a list of at least two candidate texts, got {candidates!r}")
        logits = self.model.logit_scale.exp() * self.image_features(images) @ self.text_features(candidates).T
        return logits.softmax(-1)

    def classify(self, images, candidates: list[str]) -> list[str]:
        """The most likely candidate for each image."""
        return [candidates[i] for i in self.zero_shot(images, candidates).argmax(-1).tolist()]


def _projected(out) -> torch.Tensor:
    """transformers 5 returns an output whose pooler_output is the projected embedding; 4.x a tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def load_clip(name: str = "toy-clip", device: str = "cpu") -> Clip:
    """"toy-clip" (embedded) or any transformers CLIP id / folder ("openai/clip-vit-base-patch32")."""
    with quiet_loading():
        from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

        path, local = resolve(name, ("toy-clip",))
        if local:
            check_clip_folder(path)
        model = from_pretrained(CLIPModel, path, local).to(device)
        tokenizer = from_pretrained(CLIPTokenizer, path, local)
        processor = from_pretrained(CLIPImageProcessor, path, local)
    return Clip(model, tokenizer, processor, str(name))


def check_clip_folder(path: str) -> None:
    """A local folder for load_clip must hold a transformers CLIP model: config.json with model_type "clip"."""
    p = Path(path)
    if (p / "model_index.json").exists():
        raise ValueError(f"{path} holds a diffusers pipeline, not a CLIP model: load it with conceptlab.load({path!r}); "
                         "load_clip takes a CLIP model folder (config.json with model_type 'clip')")
    config = p / "config.json"
    if not p.is_dir() or not config.exists():
        raise ValueError(f"{path} is not a CLIP model folder (no config.json): save one with "
                         "CLIPModel.save_pretrained(folder), or give a hub id such as 'openai/clip-vit-base-patch32'")
    try:
        kind = json.loads(config.read_text()).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
        raise ValueError(f"{config} is not valid JSON ({error}): the download may be incomplete; fetch it again") from None
    if kind != "clip":
        raise ValueError(f"{path} holds a {kind!r} model, not CLIP (model_type 'clip')")
