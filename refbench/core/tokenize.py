"""Sentence -> fixed-length token ids, as the official loaders do it.

``bert`` (LAVT, MagNet, DMMI, ReLA): bert-base-uncased WordPiece; encode WITH special
tokens, THEN truncate to ``length`` ids (a sentence longer than length-2 word-pieces loses
its [SEP]), pad with id 0, attention mask 1 on real tokens.  The vocabulary comes from
``path`` (a vocab.txt or a directory holding one) or, by default, the bert-base-uncased
``vocab.txt`` vendored in ``refbench/core/vocab`` (Apache-2.0, sha256 07eced37…), so a plain
``pip install refbench`` tokenizes exactly as the official code.

Kinds are registered in :data:`TOKENIZERS` (``register_tokenizer``), so other parts can
add e.g. ``clip`` without touching this module.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Callable, Protocol, Sequence

from refbench.core.errors import RefbenchError
from refbench.core.registry import Registry

VOCAB_DIR = Path(__file__).resolve().parent / "vocab"
BERT_VOCAB = VOCAB_DIR / "bert-base-uncased-vocab.txt"


class Tokenizer(Protocol):
    """What the data pipeline needs from a tokenizer."""

    length: int

    def encode(self, sentence: str) -> tuple[list[int], list[int]]:
        """(input_ids, attention_mask), both of length ``self.length``."""

    def encode_batch(self, sentences: Sequence[str]) -> tuple[list[list[int]], list[list[int]]]:
        """Lists of ``encode`` results for many sentences (faster than a loop)."""


def default_bert_vocab() -> Path:
    """The vendored bert-base-uncased vocab.txt (``refbench/core/vocab``)."""
    if not BERT_VOCAB.is_file():
        raise RefbenchError(f"{BERT_VOCAB}: missing from the installed package; reinstall refbench")
    return BERT_VOCAB


def _vocab_file(path: str | os.PathLike | None) -> Path:
    if path is None:
        return default_bert_vocab()
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "vocab.txt"
    if not p.is_file():
        raise RefbenchError(f"tokenizer path {path}: no vocab.txt there (pass a bert-base-uncased vocab.txt or its directory)")
    return p


class BertTokenizer:
    """bert-base-uncased WordPiece with the LAVT-family truncation (see module doc)."""

    def __init__(self, length: int = 20, path: str | os.PathLike | None = None) -> None:
        import transformers

        if length < 2:
            raise RefbenchError(f"token length must be at least 2 ([CLS] and [SEP]), got {length}")
        self.length = length
        self.vocab_file = _vocab_file(path)
        # transformers >= 5 takes the vocab path as `vocab` (and silently ignores
        # `vocab_file`); 4.x takes `vocab_file`.
        cls = transformers.BertTokenizerFast
        params = inspect.signature(cls.__init__).parameters
        kw = {"vocab": str(self.vocab_file)} if "vocab" in params else {"vocab_file": str(self.vocab_file)}
        self._tok = cls(do_lower_case=True, **kw)
        vocab = self.vocab_file.read_text(encoding="utf-8").split("\n")
        expect = {t: i for i, t in enumerate(vocab) if t in ("[PAD]", "[CLS]", "[SEP]", "the")}
        got = {t: self._tok.convert_tokens_to_ids(t) for t in expect}
        if got != expect or expect.get("[PAD]") != 0:
            raise RefbenchError(f"{self.vocab_file}: the tokenizer did not load this vocab as expected "
                                f"(ids {got} vs file {expect}); pass a bert-base-uncased vocab.txt")

    def _finish(self, ids: list[int]) -> tuple[list[int], list[int]]:
        ids = ids[: self.length]
        n = len(ids)
        return ids + [0] * (self.length - n), [1] * n + [0] * (self.length - n)

    def encode(self, sentence: str) -> tuple[list[int], list[int]]:
        return self._finish(self._tok.encode(sentence, add_special_tokens=True))

    def encode_batch(self, sentences: Sequence[str]) -> tuple[list[list[int]], list[list[int]]]:
        if not sentences:
            return [], []
        enc = self._tok(list(sentences), add_special_tokens=True)["input_ids"]
        pairs = [self._finish(ids) for ids in enc]
        return [p[0] for p in pairs], [p[1] for p in pairs]


def _clip_tokenizer(length: int = 77, path: str | os.PathLike | None = None) -> Tokenizer:
    """``clip`` (CRIS, JMCELN, MERES-clip): OpenAI CLIP BPE, <|startoftext|> … <|endoftext|>,
    truncated keeping <|endoftext|> last, pad 0 (refbench.core.clip_tokenizer)."""
    from refbench.core.clip_tokenizer import CLIPTokenizer  # its BPE tables load only when asked for

    return CLIPTokenizer(length=length, path=path)


#: tokenizer kinds: factory(length=..., path=...) -> Tokenizer
TOKENIZERS: Registry[Callable[..., Tokenizer]] = Registry("tokenizer kind")
TOKENIZERS.register("bert", BertTokenizer)
TOKENIZERS.register("clip", _clip_tokenizer)


def register_tokenizer(kind: str, factory: Callable[..., Tokenizer]) -> None:
    """Add a tokenizer kind; ``factory(length=..., path=...)`` returns a :class:`Tokenizer`."""
    TOKENIZERS.register(kind, factory, replace=True)


def get_tokenizer(kind: str = "bert", length: int = 20, path: str | os.PathLike | None = None) -> Tokenizer:
    """A tokenizer of a registered kind producing ``length`` ids per sentence."""
    return TOKENIZERS.get(kind)(length=length, path=path)
