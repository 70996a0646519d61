"""The toy models' vocabulary: a CLIP-style BPE tokenizer in which every world word is one token.

`python -m conceptlab.toy.vocab` rewrites `vocab/vocab.json` and `vocab/merges.txt` (shipped with
the package). The merges are learned by the `tokenizers` library's BPE trainer on the word list, so
applying them in rank order rebuilds each word whole; hand-ordered merge chains break words (a merge
from "and" ranked above "triangle"'s chain splits "triangle"), which `tests/test_tokenizer.py` guards.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..worlds.shapes import BACKGROUNDS, COLOURS, SHAPES

VOCAB_DIR = Path(__file__).parent / "vocab"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 32           # tokens per prompt, start and end included (SD uses 77)

WORDS = sorted(set(
    list(COLOURS) + list(SHAPES) + list(BACKGROUNDS)
    + "a an the and on in of with photo picture image scene object shape background empty".split()
    + "big small faded bright dark left right top bottom".split()
))
PUNCTUATION = [",", "."]


def build(out_dir: Path = VOCAB_DIR) -> tuple[Path, Path]:
    """Train the BPE merges on WORDS and write CLIP-format vocab.json and merges.txt."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    letters = sorted(set("".join(WORDS)) | set("abcdefghijklmnopqrstuvwxyz"))
    alphabet = letters + [c + "</w>" for c in letters] + PUNCTUATION + [p + "</w>" for p in PUNCTUATION]
    tok = Tokenizer(models.BPE(unk_token=EOS, end_of_word_suffix="</w>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=10_000, min_frequency=1, special_tokens=[], initial_alphabet=[],
        end_of_word_suffix="</w>", show_progress=False,
    )
    tok.train_from_iterator([" ".join(WORDS)] * 4, trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    # CLIP's layout: single characters, then the merged tokens in rank order, then the specials.
    tokens = list(alphabet)
    for m in merges:
        t = m.replace(" ", "")
        if t not in tokens:
            tokens.append(t)
    tokens += [BOS, EOS]
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_path, merges_path = out_dir / "vocab.json", out_dir / "merges.txt"
    vocab_path.write_text(json.dumps({t: i for i, t in enumerate(tokens)}, indent=0))
    merges_path.write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return vocab_path, merges_path


def tokenizer(path: Path | str = VOCAB_DIR):
    """A transformers CLIPTokenizer over the shipped vocabulary (padding with the end token, as SD 1.x)."""
    from transformers import CLIPTokenizer

    path = Path(path)
    return CLIPTokenizer(
        str(path / "vocab.json"), str(path / "merges.txt"),
        bos_token=BOS, eos_token=EOS, unk_token=EOS, pad_token=EOS, model_max_length=MAX_LENGTH,
    )


if __name__ == "__main__":
    v, m = build()
    print(f"wrote {v} and {m}")
