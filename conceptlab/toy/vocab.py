"""The toy models' vocabularies: CLIP-style BPE tokenizers in which every world word is one token.

`python -m conceptlab.toy.vocab` rewrites `vocab/vocab.json` and `vocab/merges.txt` (toy-shapes) and
`vocab/sounds/` (toy-sounds), shipped with the package. The merges are learned by BPE training on the word list, so applying them in rank order
rebuilds each word whole; hand-ordered merge chains break words (a merge from "and" ranked above
"triangle"'s chain splits "triangle"), which `tests/test_tokenizer.py` guards.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..worlds.shapes import BACKGROUNDS, COLOURS_V2, SHAPES_V2
from ..worlds.sounds import KINDS

VOCAB_DIR = Path(__file__).parent / "vocab"
SOUNDS_DIR = VOCAB_DIR / "sounds"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 32           # tokens per prompt, start and end included (SD uses 77)

WORDS = sorted(set(
    list(COLOURS_V2) + list(SHAPES_V2) + list(BACKGROUNDS)
    + "a an the and on in of with photo picture image scene object shape background empty".split()
    + "big small faded bright dark left right top bottom".split()
))
SOUND_WORDS = sorted(set(" ".join(phrase for phrase, _ in KINDS.values()).split()
                         + "a an the and with of sound sounds loud quiet".split()))
PUNCTUATION = [",", "."]


def learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """BPE training (Sennrich et al. 2016) on a word list until every word is one symbol.

    Each round merges the most frequent adjacent pair over all words (ties: the alphabetically first),
    applying it everywhere at once, so that encoding with the merges in rank order rebuilds every word.
    Written here rather than with `tokenizers.trainers.BpeTrainer` because that trainer breaks ties in a
    different order on every run, and the shipped vocabulary must be reproducible byte for byte.
    """
    segs = [list(w[:-1]) + [w[-1] + "</w>"] for w in words]
    merges = []
    while any(len(s) > 1 for s in segs):
        counts: dict[tuple[str, str], int] = {}
        for s in segs:
            for pair in zip(s, s[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        for k, s in enumerate(segs):
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1]); i += 2
                else:
                    out.append(s[i]); i += 1
            segs[k] = out
    return merges


def build(out_dir: Path = VOCAB_DIR, words: list[str] = WORDS) -> tuple[Path, Path]:
    """Learn the merges on `words` and write CLIP-format vocab.json and merges.txt:
    single characters (bare and word-final), the merged symbols in rank order, then the two specials."""
    letters = sorted(set("".join(words)) | set("abcdefghijklmnopqrstuvwxyz"))
    tokens = letters + [c + "</w>" for c in letters] + PUNCTUATION + [p + "</w>" for p in PUNCTUATION]
    merges = learn_merges(words)
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
    tokens += [BOS, EOS]
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_path, merges_path = out_dir / "vocab.json", out_dir / "merges.txt"
    vocab_path.write_text(json.dumps({t: i for i, t in enumerate(tokens)}, indent=0))
    merges_path.write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    return vocab_path, merges_path


def tokenizer(path: Path | str = VOCAB_DIR):
    """A transformers CLIPTokenizer over a shipped vocabulary (padding with the end token, as SD 1.x):
    toy-shapes' by default, toy-sounds' with `tokenizer(SOUNDS_DIR)`."""
    from transformers import CLIPTokenizer

    path = Path(path)
    return CLIPTokenizer(
        str(path / "vocab.json"), str(path / "merges.txt"),
        bos_token=BOS, eos_token=EOS, unk_token=EOS, pad_token=EOS, model_max_length=MAX_LENGTH,
    )


if __name__ == "__main__":
    for folder, words in ((VOCAB_DIR, WORDS), (SOUNDS_DIR, SOUND_WORDS)):
        v, m = build(folder, words)
        print(f"wrote {v} and {m}")
