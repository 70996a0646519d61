"""Baselines of ScalingConcept's Table 1, run on the same pipeline as conceptlab's own methods.

LEDITS++ (Brack et al. 2024) comes from diffusers (LEditsPPPipelineStableDiffusion / ...XL), built from the
model's own components: it inverts with edit-friendly DDPM noise and adds the concept with semantic guidance.
InstructPix2Pix needs its own instruction-tuned checkpoint ("timbrooks/instruct-pix2pix"): it runs on real
models only, never on toy-shapes.
"""
from __future__ import annotations

import torch

from .images import to_tensor
from .models import Model


@torch.no_grad()
def ledits_pp_add(model: Model, images, concepts: list[str], steps: int = 50, guidance: float = 5.0,
                  threshold: float = 0.9, seed: int = 0) -> torch.Tensor:
    """LEDITS++ adding each image's concept ("enhance" as an added edit concept). Returns (B, 3, H, W) in [-1, 1]."""
    from diffusers import DPMSolverMultistepScheduler, LEditsPPPipelineStableDiffusion, LEditsPPPipelineStableDiffusionXL

    images = list(images)
    if len(images) != len(concepts):
        raise ValueError(f"{len(images)} images but {len(concepts)} concepts: give one concept per image")
    cls = LEditsPPPipelineStableDiffusionXL if model.kind == "sdxl" else LEditsPPPipelineStableDiffusion
    parts = {k: v for k, v in model.pipe.components.items() if k in cls._get_signature_keys(cls)[0]}
    # LEDITS++'s own scheduler (its DDIM path indexes alphas with float timesteps in diffusers 0.42)
    parts["scheduler"] = DPMSolverMultistepScheduler.from_config(model.scheduler.config, algorithm_type="sde-dpmsolver++",
                                                                 solver_order=2)
    pipe = cls(**parts) if model.kind == "sdxl" else cls(**parts, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    # LEDITS++ intersects its noise mask with cross-attention read at latent/4 resolution in the down and up
    # blocks (16x16 on SD's 64x64 latents); toy-shapes attends there only in its 4x4 middle block, so on the
    # toy models the edit uses the noise mask alone.
    intersect = not model.toy
    h, w = model.image_size
    saved = dict(model.unet.attn_processors)          # LEDITS++ installs its own processors on the shared UNet
    out = []
    try:
        for image, concept in zip(images, concepts):
            model.check_prompt(concept)
            x = (to_tensor(image, model.image_size) + 1) / 2                 # the pipeline takes [0, 1]
            pipe.invert(image=x, num_inversion_steps=steps, generator=torch.Generator().manual_seed(seed), height=h, width=w)
            res = pipe(editing_prompt=[concept], edit_guidance_scale=[guidance], edit_threshold=[threshold],
                       reverse_editing_direction=[False], output_type="pt", generator=torch.Generator().manual_seed(seed),
                       use_intersect_mask=intersect)
            out.append(res.images * 2 - 1)
    finally:
        model.unet.set_attn_processor(saved)
    return torch.cat(out).clamp(-1, 1)
