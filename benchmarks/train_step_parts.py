"""Where a toy-shapes UNet training step's time goes (world v2 captions, grounding maps grabbed, toy.train's own
losses): seconds per step of each part, averaged over --steps steps after 5 of warm-up, for each --batch. Run on a
quiet machine:

    .venv/bin/python benchmarks/train_step_parts.py [--batch 64 32] [--steps 20]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import time
from pathlib import Path

import numpy as np
import torch

from conceptlab.toy import nets, train, vocab
from conceptlab.worlds import shapes


def parts(batch: int, steps: int, data: dict) -> dict[str, float]:
    """Seconds per step of each part of one toy.train UNet step at this batch (random latents)."""
    torch.manual_seed(0)
    unet, text = nets.unet(), nets.text_encoder(vocab.VOCAB_DIR)
    tokens = train.Tokens(vocab.tokenizer(vocab.VOCAB_DIR))
    captions, rng = train.shapes_captions(data), np.random.default_rng(0)
    params = list(unet.parameters()) + list(text.parameters())
    opt, ema = torch.optim.AdamW(params, lr=1e-3), copy.deepcopy(unet).requires_grad_(False)
    objects = torch.as_tensor(data["objects"]).long()
    grab = train.CrossAttentionMaps(unet)                             # as train_unet: one, entered each step
    seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(part):
        t0 = time.perf_counter()
        yield
        seconds[part] = seconds.get(part, 0.0) + time.perf_counter() - t0

    for it in range(5 + steps):
        if it == 5:                                                   # warm-up done
            seconds.clear()
        idx = torch.randint(len(objects), (batch,))
        with timed("captions"):
            caps, pairs = captions(idx.tolist(), rng, tokens)
        z0, t = torch.randn(batch, 4, nets.LATENT, nets.LATENT), torch.randint(0, 1000, (batch,))
        with timed("tokenize"):
            ids = tokens(caps)
        with timed("text forward"):
            cond = text(ids).last_hidden_state
        with timed("UNet forward (maps grabbed)"), grab:
            pred = unet(z0, t, cond).sample
        with timed("losses"):
            loss = train.denoising_loss(pred, z0, torch.rand(batch) * 10 + 0.01)
            loss = loss + 0.1 * train.grounding_loss(grab.maps, objects[idx], pairs)
        with timed("backward"):
            opt.zero_grad()
            loss.backward()
        with timed("optimizer"):
            opt.step()
        with timed("EMA"):
            train.ema_update(ema, unet, 0.999)
    return {k: round(v / steps, 4) for k, v in seconds.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", default=[64])
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    data = train.world_data(20000, Path(".toy_runs/unet_pilot"), shapes.V2)
    for batch in args.batch:
        row = parts(batch, args.steps, data)
        print(f"batch {batch}, {torch.get_num_threads()} threads: {sum(row.values()):.3f} s a step;", row)


if __name__ == "__main__":
    main()
