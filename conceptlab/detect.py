"""Presence of a named object in an image on real models: an open-vocabulary detector through transformers.

    detector = conceptlab.detect.load_detector("google/owlv2-base-patch16-ensemble")
    detector.presence(image, "dog")          # the highest box score for "a photo of a dog", in [0, 1]
    detector.is_present(image, "dog")        # score >= detector.threshold

OWLv2 (Minderer et al. 2023) stands in for the paper's Grounding DINO (ScalingConcept Fig. 3 counts an image
as "removed" when Grounding DINO no longer finds the class). The threshold 0.2 is OWLv2's usual box
threshold, a convention, not a value conceptlab measured. On toy models the shapes world's oracle answers
exactly instead (`conceptlab.course.presence`). `conceptlab.toy.tiny.owlv2` builds a random-weight twin.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .images import to_pil
from .models import from_pretrained, quiet_loading, resolve

THRESHOLD = 0.2


class Detector:
    def __init__(self, model, processor, name: str, threshold: float = THRESHOLD):
        self.model, self.processor, self.name, self.threshold = model.eval(), processor, name, threshold

    def __repr__(self):
        return f"Detector({self.name!r}, threshold={self.threshold})"

    @torch.no_grad()
    def scores(self, images, labels: list[str]) -> torch.Tensor:
        """(B, K): for each image the highest box score of each label ("a photo of a {label}")."""
        if isinstance(labels, str) or not labels or any(not isinstance(x, str) or not x.strip() for x in labels):
            raise ValueError(f"labels must be a non-empty list of non-empty strings, got {labels!r}")
        if isinstance(images, torch.Tensor):
            images = to_pil(images)
        images = images if isinstance(images, (list, tuple)) else [images]
        images = [im if hasattr(im, "convert") else Image.fromarray(np.asarray(im, dtype=np.uint8))
                  for im in images]
        queries = [f"a photo of a {x}" for x in labels]
        inputs = self.processor(text=[queries] * len(images), images=[im.convert("RGB") for im in images],
                                return_tensors="pt", padding=True, truncation=True)
        logits = self.model(**{k: v.to(self.model.device) for k, v in inputs.items()}).logits     # (B, boxes, K)
        return logits.sigmoid().amax(1).float().cpu()

    def presence(self, image, label: str) -> float:
        return float(self.scores(image, [label])[0, 0])

    def is_present(self, image, label: str) -> bool:
        return self.presence(image, label) >= self.threshold


def load_detector(name: str = "google/owlv2-base-patch16-ensemble", device: str = "cpu",
                  threshold: float = THRESHOLD) -> Detector:
    """An OWLv2 checkpoint by hub id or folder (transformers' Owlv2ForObjectDetection and Owlv2Processor)."""
    with quiet_loading():
        from transformers import Owlv2ForObjectDetection, Owlv2Processor

        path, local = resolve(name, ("owlv2",))
        model = from_pretrained(Owlv2ForObjectDetection, path, local).to(device)
        processor = from_pretrained(Owlv2Processor, path, local)
    return Detector(model, processor, str(name), threshold)
