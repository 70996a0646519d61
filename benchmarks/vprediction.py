"""v-prediction checkpoints (SD 2.x at 768 px, many fine-tunes): DDIM inversion then reconstruction on the
v-prediction twin of toy-shapes (the same weights re-expressed as v = sqrt(abar) eps - sqrt(1 - abar) x0,
`conceptlab.toy.tiny.v_twin`) against toy-shapes itself, on held-out scenes, and the same twin read as if
its output were eps (what conceptlab did before it handled `prediction_type`).

    .venv/bin/python benchmarks/vprediction.py        # about a minute; writes results/vprediction.json
"""
import json
from pathlib import Path

import numpy as np
from diffusers import DDIMScheduler

import conceptlab
from conceptlab import inversion, metrics
from conceptlab.images import to_tensor
from conceptlab.models import Model
from conceptlab.toy import tiny
from conceptlab.worlds import shapes

SCENES, STEPS = 50, 50


def round_trip(model, scenes) -> list[float]:
    """PSNR (dB) of invert (50 DDIM steps, the caption) then sample back, per scene, in batches of 10."""
    out = []
    for k in range(0, len(scenes), 10):
        part = scenes[k:k + 10]
        invs = inversion.invert(model, [s.image for s in part], [s.caption for s in part], steps=STEPS)
        rec = inversion.reconstruct(model, invs)
        out += [float(metrics.psnr(rec[i:i + 1], to_tensor(s.image))) for i, s in enumerate(part)]
    return out


def main():
    eps_model = conceptlab.load("toy-shapes")
    twin = tiny.v_twin(eps_model.pipe)
    v_model = Model(twin, "toy-shapes (v twin)", toy=True)
    unhandled = tiny.v_twin(eps_model.pipe)                  # v outputs, scheduler saying epsilon: the old reading
    unhandled.scheduler = DDIMScheduler.from_config({**twin.scheduler.config, "prediction_type": "epsilon"})
    old = Model(unhandled, "toy-shapes (v twin read as eps)", toy=True)
    scenes = shapes.scenes("heldout", SCENES, start=200)
    rows = {m.name: round_trip(m, scenes) for m in (eps_model, v_model, old)}
    result = {name: dict(mean_db=float(np.mean(v)), per_scene=[round(x, 3) for x in v]) for name, v in rows.items()}
    result["scenes"], result["steps"] = SCENES, STEPS
    for name, v in rows.items():
        print(f"{name:34s} round trip {np.mean(v):6.2f} dB")
    Path(__file__).parent.joinpath("results", "vprediction.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
