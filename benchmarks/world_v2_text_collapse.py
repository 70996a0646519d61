"""Does the text encoder tell the shape words apart? For each model, the last hidden state at the shape token of
"a <colour> <shape>" (the state the UNet's cross-attention reads), and per pair of shapes the distance between the
two states, averaged over the colours. A text encoder trained from scratch with the UNet can merge two shapes the
UNet does not yet draw apart; the closer the two states, the less the UNet has to tell the two shapes by.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/world_v2_text_collapse.py MODEL [MODEL ...] [--record]

MODEL: a training's checkpoint (`<workdir>/unet.ckpt` or a copy of one; its EMA text encoder), an exported
toy-shapes folder, or an exported toy-clip folder (its text tower); `init` is the untrained text encoder that world_v2_unet_pilot.py's arms start from (and v2-frozentext keeps). With
--record the rows go to benchmarks/results/world_v2_text_collapse.json under the model's path.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch
from transformers import CLIPModel, CLIPTextModel, CLIPTokenizer

from conceptlab.toy import nets, train, vocab
from conceptlab.worlds import shapes

RESULTS = Path(__file__).parent / "results" / "world_v2_text_collapse.json"


def load(spec: str):
    """(text encoder, tokenizer, what it is)."""
    if spec == "init":
        torch.manual_seed(0)
        nets.unet()                                     # drawn first, as world_v2_unet_pilot.py draws them
        return nets.text_encoder(vocab.VOCAB_DIR), vocab.tokenizer(vocab.VOCAB_DIR), "random init"
    path = Path(spec)
    if (path / "text_encoder").is_dir():
        return (CLIPTextModel.from_pretrained(path / "text_encoder"), CLIPTokenizer.from_pretrained(path / "tokenizer"),
                "exported")
    if (path / "config.json").exists():                 # an exported toy-clip: its text tower
        return CLIPModel.from_pretrained(path).text_model, CLIPTokenizer.from_pretrained(path), "toy-clip text tower"
    if (ema := train.load_ema_shapes(path)) is None:
        raise SystemExit(f"{spec}: neither an exported toy-shapes or toy-clip folder, a checkpoint, nor `init`")
    _, text, step = ema
    return text, vocab.tokenizer(vocab.VOCAB_DIR), f"step {step}"


@torch.no_grad()
def shape_states(text, tok, colours, shape_names) -> dict[str, torch.Tensor]:
    """shape -> (colours, width): the hidden state at the shape token of "a <colour> <shape>"."""
    tokens = train.Tokens(tok)
    out = {}
    for s in shape_names:
        h = text(tokens([f"a {c} {s}" for c in colours])).last_hidden_state       # (colours, L, width)
        out[s] = h[:, 3]                                                           # <sot> a colour SHAPE
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument("--record", action="store_true")
    args = p.parse_args()
    colours, names = shapes.V1.colours, shapes.SHAPES                  # words every toy vocabulary has
    out = json.loads(RESULTS.read_text()) if args.record and RESULTS.exists() else {}
    for spec in args.models:
        text, tok, what = load(spec)
        h = shape_states(text.eval(), tok, colours, names)
        row = {}
        for a, b in itertools.combinations(names, 2):
            row[f"{a}-{b}"] = dict(distance=round(float((h[a] - h[b]).norm(dim=1).mean()), 3),
                                   cosine=round(float(torch.cosine_similarity(h[a], h[b], dim=1).mean()), 3))
        print(f"{spec} ({what}):", "  ".join(f"{k} {v['distance']:.2f} (cos {v['cosine']:.3f})" for k, v in row.items()))
        out[spec] = dict(what=what, colours=list(colours), pairs=row,
                         command="benchmarks/world_v2_text_collapse.py " + " ".join(sys.argv[1:]))
    if args.record:
        RESULTS.write_text(json.dumps(out, indent=1) + "\n")
        print("kept in", RESULTS)


if __name__ == "__main__":
    main()
