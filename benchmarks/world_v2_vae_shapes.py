"""Does a toy VAE's latent keep circle and square apart? For 40 random pairs (a circle and a square of one colour,
place and half-size, on one background): |z(circle) - z(square)| over |z(circle) - z(background alone)|, latents
scaled as the UNet sees them. Asked because world v2's UNet draws circles for squares (world_v2_peek.py --why).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/world_v2_vae_shapes.py [VAE folders...]   # seconds; prints only
"""
from __future__ import annotations

import sys

import numpy as np
import torch
from diffusers import AutoencoderKL

from conceptlab.worlds import shapes

VAES = ["conceptlab/toy/weights/toy-shapes/vae", ".toy_runs/v2c/vae"]


def latent(vae, image: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(image.transpose(2, 0, 1)[None].astype(np.float32) / 127.5 - 1)
    with torch.no_grad():
        return vae.encode(x).latent_dist.mean[0] * vae.config.scaling_factor


def main():
    for path in sys.argv[1:] or VAES:
        vae = AutoencoderKL.from_pretrained(path).eval()
        rng = np.random.default_rng(0)
        rel = []
        for _ in range(40):
            colour, bg = str(rng.choice(shapes.V1.colours)), str(rng.choice(list(shapes.BACKGROUNDS)))
            r, (cx, cy) = float(rng.uniform(4, 7)), rng.uniform(9, 23, 2)
            z = {s: latent(vae, shapes.render(bg, [shapes.ShapeObject(s, colour, cx, cy, r)])[0])
                 for s in ("circle", "square")}
            z_bg = latent(vae, shapes.render(bg, [])[0])
            rel.append(float((z["circle"] - z["square"]).norm() / (z["circle"] - z_bg).norm()))
        print(f"{path}: |z(circle) - z(square)| / |z(circle) - z(background)| mean {np.mean(rel):.3f}, "
              f"min {min(rel):.3f} (40 pairs)")


if __name__ == "__main__":
    main()
