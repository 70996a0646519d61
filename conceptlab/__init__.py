"""conceptlab: learn and reproduce how text-guided diffusion models decompose concepts.

    import conceptlab
    model = conceptlab.load("toy-shapes")      # an embedded Stable-Diffusion-shaped model, offline, CPU
    clip = conceptlab.load_clip("toy-clip")    # an embedded CLIP for zero-shot scores
    sound = conceptlab.load("toy-sounds")      # an embedded text-to-spectrogram model; generate -> (waveform, rate)
"""
from .clip import Clip, load_clip
from .dino import Dino, load_dino
from .models import Condition, Model, ModelNotAvailableError, load
from .perceptual import Lpips, load_lpips
from .scaling import scale_concept

__all__ = ["load", "load_clip", "load_dino", "load_lpips", "scale_concept", "Model", "Clip", "Dino", "Lpips", "Condition", "ModelNotAvailableError"]
__version__ = "0.1.0"
