"""BERT tokenization as the LAVT family does it: special tokens first, then truncate to 20."""
from __future__ import annotations

import pytest

from refbench.core.tokenize import TOKENIZERS, BertTokenizer, default_bert_vocab, get_tokenizer, register_tokenizer
from refbench.core.errors import RefbenchError

SENTENCES = [
    "the red circle",
    "man in red shirt, left!!",
    "Café naïve résumé on the LEFT",
    "  weird   spacing\tand\ttabs  ",
    "guy's hat - 2nd from left",
    "ÅNGSTRÖM 東京 emoji 😀",
    "",
    "the small red circle left of the blue square that is next to a very very very long sentence that goes on",
    "a b c d e f g h i j k l m n o p q",       # 17 word-pieces + 2 specials = 19
    "a b c d e f g h i j k l m n o p q r",     # 18 + 2 = 20: keeps [SEP]
    "a b c d e f g h i j k l m n o p q r s",   # 19 + 2 = 21: loses [SEP]
]


@pytest.fixture(scope="module")
def tok():
    return get_tokenizer("bert", 20)


@pytest.fixture(scope="module")
def reference():
    # transformers' pure-Python WordPiece (the class the official repos use), same vocab.
    from transformers.models.bert import BertTokenizerLegacy

    return BertTokenizerLegacy(vocab_file=str(default_bert_vocab()), do_lower_case=True)


def _official(reference, sentence):
    ids = reference.encode(sentence, add_special_tokens=True)[:20]  # LAVT: encode, then truncate
    mask = [1] * len(ids) + [0] * (20 - len(ids))
    return ids + [0] * (20 - len(ids)), mask


def test_matches_the_official_encode_then_truncate(tok, reference):
    for s in SENTENCES:
        assert tok.encode(s) == _official(reference, s), s
    ids, mask = tok.encode_batch(SENTENCES)
    assert [(i, m) for i, m in zip(ids, mask)] == [tok.encode(s) for s in SENTENCES]


def test_truncation_drops_sep_for_long_sentences(tok):
    ids, mask = tok.encode("a b c d e f g h i j k l m n o p q r")
    assert ids[0] == 101 and ids[-1] == 102 and sum(mask) == 20
    ids, mask = tok.encode("a b c d e f g h i j k l m n o p q r s")
    assert ids[0] == 101 and 102 not in ids and sum(mask) == 20
    ids, mask = tok.encode("the red circle")
    assert ids[:5] == [101, 1996, 2417, 4418, 102] and ids[5:] == [0] * 15 and mask == [1] * 5 + [0] * 15


def test_synthetic_sentences_tokenize_like_the_reference(tok, reference, tmp_path_factory):
    from refbench.build.synth import ensure_synth
    from refbench.data import open_split

    root = ensure_synth("tiny", 0, tmp_path_factory.getbasetemp() / "refbench-synth-cache")
    sents = [s.sentence for s in open_split("synth-zom/train", root).samples]
    ids, _ = tok.encode_batch(sents)
    assert ids == [_official(reference, s)[0] for s in sents]
    assert 100 not in {i for row in ids for i in row}  # no [UNK]: the vocabulary covers the synthetic language


def test_other_lengths_and_paths(tmp_path):
    t = get_tokenizer("bert", 8, default_bert_vocab())
    assert t.encode("the red circle") == ([101, 1996, 2417, 4418, 102, 0, 0, 0], [1] * 5 + [0] * 3)
    with pytest.raises(RefbenchError, match="no vocab.txt"):
        get_tokenizer("bert", 20, tmp_path)
    bad = tmp_path / "vocab.txt"
    bad.write_text("hello\nworld\n")
    with pytest.raises(RefbenchError, match="did not load this vocab"):
        BertTokenizer(20, bad)
    with pytest.raises(RefbenchError, match="at least 2"):
        BertTokenizer(1)


def test_registry_is_extensible():
    with pytest.raises(RefbenchError, match="unknown tokenizer kind 'chars-test'.*Valid: bert"):
        get_tokenizer("chars-test", 17)

    class Chars:
        def __init__(self, length, path=None):
            self.length = length

        def encode(self, s):
            ids = [ord(c) for c in s][: self.length]
            return ids + [0] * (self.length - len(ids)), [1] * len(ids) + [0] * (self.length - len(ids))

        def encode_batch(self, ss):
            pairs = [self.encode(s) for s in ss]
            return [p[0] for p in pairs], [p[1] for p in pairs]

    register_tokenizer("chars-test", Chars)
    try:
        assert get_tokenizer("chars-test", 4).encode("ab") == ([97, 98, 0, 0], [1, 1, 0, 0])
    finally:
        TOKENIZERS.unregister("chars-test")
