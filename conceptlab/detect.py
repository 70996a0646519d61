"""Ground truth on real models, from maintained models through transformers (on toy models the worlds' own
oracles answer exactly instead, `conceptlab.course`):

    detector = conceptlab.detect.load_detector("google/owlv2-base-patch16-ensemble")
    detector.presence(image, "dog")          # the highest box score for "a photo of a dog", in [0, 1]
    detector.is_present(image, "dog")        # score >= detector.threshold

    sam = conceptlab.detect.load_segmenter("facebook/sam-vit-base")
    sam.mask(image, concept_mask)            # SAM's mask prompted by 3 random points of the concept's mask
    sam.region(image, concept_mask)          # the image inside that mask, black elsewhere (SIM^I's region)

    clap = conceptlab.detect.load_sound_judge("laion/clap-htsat-unfused")     # AudioLDM 2's own CLAP
    clap.presence(wave, "a siren", ["a drum", "a beep"])    # zero-shot probability of "a siren" among them

OWLv2 (Minderer et al. 2023) stands in for the paper's Grounding DINO (ScalingConcept Fig. 3 counts an image
as "removed" when Grounding DINO no longer finds the class). The threshold 0.2 is OWLv2's usual box
threshold, a convention, not a value conceptlab measured. On toy models the shapes world's oracle answers
exactly instead (`conceptlab.course.presence`). `conceptlab.toy.tiny.owlv2` builds a random-weight twin.

ConceptExpress scores a concept against its region of the source image "masked with a SAM mask prompted by 3
random points of the concept mask" (book/methods.md, ConceptExpress, Evaluation): `Segmenter` does exactly that with transformers'
SamModel. Sound presence on real models is CLAP zero-shot classification (Wu et al. 2023): the softmax, at
CLAP's own logit scale, of the clip's similarity to each candidate description. Twins: `tiny.sam`, `tiny.clap`.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .images import to_pil, to_tensor
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


def _pil_images(images) -> list:
    """Tensors (B, 3, H, W) in [-1, 1], PIL images, uint8 arrays or a list of them -> RGB PIL images."""
    if isinstance(images, torch.Tensor):
        return to_pil(to_tensor(images, None, "images"))
    images = images if isinstance(images, (list, tuple)) else [images]
    return [im.convert("RGB") if hasattr(im, "convert") else Image.fromarray(np.asarray(im, dtype=np.uint8))
            for im in images]


class Segmenter:
    """SAM prompted by points of a concept's mask (ConceptExpress's SIM^I regions)."""

    def __init__(self, model, processor, name: str):
        self.model, self.processor, self.name = model.eval(), processor, name

    def __repr__(self):
        return f"Segmenter({self.name!r})"

    @torch.no_grad()
    def mask(self, image, concept_mask, points: int = 3, seed: int = 0) -> np.ndarray:
        """SAM's single-mask answer (H, W) bool for `points` positive points drawn (seeded) inside concept_mask,
        a bool (H, W) mask of the image's size."""
        (pil,) = _pil_images(image)
        m = np.asarray(concept_mask)
        if m.shape != (pil.height, pil.width):
            raise ValueError(f"concept_mask is {m.shape} but the image is {(pil.height, pil.width)} (height, width): "
                             "give the mask at the image's size")
        ys, xs = np.nonzero(m)
        if len(ys) == 0:
            raise ValueError("concept_mask is empty: SAM needs at least one point inside the concept")
        if not isinstance(points, int) or points < 1:
            raise ValueError(f"points must be a positive int, got {points!r}")
        pick = np.random.default_rng(seed).choice(len(ys), size=min(points, len(ys)), replace=False)
        prompt = [[[[int(xs[i]), int(ys[i])] for i in pick]]]                   # (image, object, point, xy)
        inputs = self.processor(images=pil, input_points=prompt, input_labels=[[[1] * len(pick)]], return_tensors="pt")
        device = self.model.device
        out = self.model(pixel_values=inputs["pixel_values"].to(device), input_points=inputs["input_points"].to(device),
                         input_labels=inputs["input_labels"].to(device), multimask_output=False)
        masks = self.processor.image_processor.post_process_masks(out.pred_masks.cpu(), inputs["original_sizes"],
                                                                  inputs["reshaped_input_sizes"])
        return masks[0][0, 0].numpy().astype(bool)                               # (H, W)

    def region(self, image, concept_mask, points: int = 3, seed: int = 0) -> torch.Tensor:
        """(1, 3, H, W) in [-1, 1]: the image inside SAM's mask, black elsewhere."""
        x = to_tensor(image, None, "image")[:1]
        keep = torch.from_numpy(self.mask(x, concept_mask, points, seed))
        return torch.where(keep, x, torch.full_like(x, -1.0))


def load_segmenter(name: str = "facebook/sam-vit-base", device: str = "cpu") -> Segmenter:
    """A SAM checkpoint by hub id or folder (transformers' SamModel and SamProcessor)."""
    with quiet_loading():
        from transformers import SamModel, SamProcessor

        path, local = resolve(name, ("sam",))
        model = from_pretrained(SamModel, path, local).to(device)
        processor = from_pretrained(SamProcessor, path, local)
    return Segmenter(model, processor, str(name))


class SoundJudge:
    """CLAP zero-shot: which of some descriptions a sound clip matches."""

    def __init__(self, model, processor, name: str):
        self.model, self.processor, self.name = model.eval(), processor, name
        self.sample_rate = int(processor.feature_extractor.sampling_rate)             # 48 kHz for LAION's CLAP

    def __repr__(self):
        return f"SoundJudge({self.name!r}, {self.sample_rate} Hz)"

    @torch.no_grad()
    def scores(self, waves, labels: list[str], sample_rate: int = 16000) -> torch.Tensor:
        """(B, K): for each clip (a waveform (T,) or (B, T) at sample_rate) the zero-shot probabilities of labels."""
        import torchaudio.functional as AF

        if isinstance(labels, str) or len(labels) < 2 or any(not isinstance(x, str) or not x.strip() for x in labels):
            raise ValueError(f"labels must be a list of at least two non-empty descriptions (zero-shot compares "
                             f"them), got {labels!r}")
        x = torch.as_tensor(np.asarray(waves, dtype=np.float32) if not isinstance(waves, torch.Tensor) else waves)
        x = x.detach().float()
        x = x[None] if x.dim() == 1 else x
        if x.dim() != 2 or x.shape[1] < 2 or not torch.isfinite(x).all():
            raise ValueError(f"waves must be finite waveforms (T,) or (B, T), got shape {tuple(x.shape)}")
        if sample_rate != self.sample_rate:
            x = AF.resample(x, int(sample_rate), self.sample_rate)
        inputs = self.processor(audio=list(x.numpy()), text=list(labels), sampling_rate=self.sample_rate,
                                return_tensors="pt", padding=True)
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        out = self.model(**inputs)
        return out.logits_per_audio.float().softmax(-1).cpu()                  # (B, K)

    def presence(self, wave, label: str, others: list[str], sample_rate: int = 16000) -> float:
        """The zero-shot probability of `label` against `others`, for one clip."""
        return float(self.scores(wave, [label, *others], sample_rate)[0, 0])


def load_sound_judge(name: str = "laion/clap-htsat-unfused", device: str = "cpu") -> SoundJudge:
    """A CLAP checkpoint by hub id or folder (transformers' ClapModel and ClapProcessor); AudioLDM 2's own CLAP
    is laion/clap-htsat-unfused."""
    with quiet_loading():
        from transformers import ClapModel, ClapProcessor

        path, local = resolve(name, ("clap",))
        model = from_pretrained(ClapModel, path, local).to(device)
        processor = from_pretrained(ClapProcessor, path, local)
    return SoundJudge(model, processor, str(name))
