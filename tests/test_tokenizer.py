import filecmp

import pytest

from conceptlab.toy import vocab
from conceptlab.worlds import shapes


def test_every_world_word_is_one_token():
    tok = vocab.tokenizer()
    for w in vocab.WORDS + vocab.PUNCTUATION:
        ids = tok(w, add_special_tokens=False).input_ids
        assert len(ids) == 1, (w, tok.convert_ids_to_tokens(ids))


@pytest.mark.parametrize("index", range(20))
def test_caption_round_trip(index):
    tok = vocab.tokenizer()
    cap = shapes.scene("heldout", index).caption
    ids = tok(cap, padding="max_length", max_length=tok.model_max_length).input_ids
    assert len(ids) == vocab.MAX_LENGTH
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.pad_token_id == tok.eos_token_id   # SD 1.x padding
    n_words = len(cap.replace(",", " ,").split())
    assert ids[n_words + 1] == tok.eos_token_id                                            # one token a word
    assert tok.decode(ids, skip_special_tokens=True).replace(" ,", ",") == cap


def test_shipped_vocabulary_is_what_the_builder_makes(tmp_path):
    vocab.build(tmp_path)
    assert filecmp.cmp(tmp_path / "vocab.json", vocab.VOCAB_DIR / "vocab.json", shallow=False)
    assert filecmp.cmp(tmp_path / "merges.txt", vocab.VOCAB_DIR / "merges.txt", shallow=False)


def test_hand_ordered_merges_would_break_words(tmp_path):
    """Why the merges are learned: ranking 'a n' before triangle's chain splits 'triangle'."""
    from transformers import CLIPTokenizer

    chain = ["t r", "tr i", "tri a", "tria n", "trian g", "triang l", "triangl e</w>"]
    merges = ["a n"] + chain
    letters = sorted(set("triangle"))
    tokens = letters + [c + "</w>" for c in letters] + ["an", "tr", "tri", "tria", "trian", "triang", "triangl",
                                                       "triangle</w>", vocab.BOS, vocab.EOS]
    import json
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    bad = CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), unk_token=vocab.EOS,
                        bos_token=vocab.BOS, eos_token=vocab.EOS, pad_token=vocab.EOS)
    assert len(bad("triangle", add_special_tokens=False).input_ids) > 1
    assert len(vocab.tokenizer()("triangle", add_special_tokens=False).input_ids) == 1
