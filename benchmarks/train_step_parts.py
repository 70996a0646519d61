"""Where a toy-shapes UNet training step's time goes (batch 64, world v2 captions, grounding maps grabbed): seconds per
step of each part, averaged over 20 steps after 5. Run on a quiet machine:

    .venv/bin/python benchmarks/train_step_parts.py
"""
import time, torch, numpy as np, torch.nn.functional as F
from conceptlab.toy import nets, train, vocab
from conceptlab.worlds import shapes
from pathlib import Path
torch.manual_seed(0)
unet, text = nets.unet(), nets.text_encoder(vocab.VOCAB_DIR)
tok = vocab.tokenizer(vocab.VOCAB_DIR); tokens = train.Tokens(tok)
data = train.world_data(20000, Path(".toy_runs/unet_pilot"), shapes.V2)
caps_fn = train.shapes_captions(data)
rng = np.random.default_rng(0)
params = list(unet.parameters()) + list(text.parameters())
opt = torch.optim.AdamW(params, lr=1e-3)
ema = __import__("copy").deepcopy(unet)
objects = torch.as_tensor(data["objects"]).long()
T = {}
def tick(k, t0): T[k] = T.get(k, 0) + time.perf_counter() - t0
for it in range(25):
    idx = torch.randint(20000, (64,))
    t0 = time.perf_counter(); caps, pairs = caps_fn(idx.tolist(), rng, tokens); tick("captions", t0)
    z0 = torch.randn(64, 4, 16, 16); t = torch.randint(0, 1000, (64,))
    t0 = time.perf_counter(); ids = tokens(caps); tick("tokenize", t0)
    t0 = time.perf_counter(); cond = text(ids).last_hidden_state; tick("text fwd", t0)
    grab = train.CrossAttentionMaps(unet)
    t0 = time.perf_counter()
    with grab:
        pred = unet(z0, t, cond).sample
    tick("unet fwd (grab)", t0)
    t0 = time.perf_counter(); g = train.grounding_loss(grab.maps, objects[idx], pairs); loss = F.mse_loss(pred, z0) + 0.1 * g; tick("losses", t0)
    t0 = time.perf_counter(); opt.zero_grad(); loss.backward(); tick("backward", t0)
    t0 = time.perf_counter(); opt.step(); tick("opt", t0)
    t0 = time.perf_counter(); train.ema_update(ema, unet, 0.999); tick("ema", t0)
    t0 = time.perf_counter()
    with torch.no_grad(): unet(z0, t, cond)
    tick("(unet fwd no grab, no grad)", t0)
    if it == 4: T.clear()
print(torch.get_num_threads(), {k: round(v / 20, 4) for k, v in T.items()})
