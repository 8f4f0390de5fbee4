"""Entity-phrase erasing (Hu et al., ICCV 2023, §3.1: "we randomly mask the entity-phrase via
TextBlob"), done as the official code does it (``data/dataset*.py``;
the official DMMI repository's train.py):

1. POS-tag the lower-cased sentence, punctuation dropped (TextBlob's ``.tags``);
2. keep the word indices tagged ``NN`` or ``NNS`` with index < 19;
3. group consecutive indices into spans;
4. pick **one** span, once per sentence (the official code draws it with ``random.choice``
   when the dataset is built, so the same span is erased every epoch);
5. write token id 0 ([PAD], not [MASK]) at position word index + 1 of the BERT ids (+1 for
   [CLS]); the attention mask is left unchanged.

The word→token mapping in step 5 assumes one word-piece per word and no punctuation, so it lands
on the wrong token when a word splits into several pieces or punctuation precedes the noun.
That misalignment is the official behaviour and is reproduced.  The one deliberate difference:
a position past the sentence's real tokens (possible only when the tagger finds more words than
BERT has tokens) is skipped, where the official code would raise IndexError.

Tagger.  The official ``TextBlob(s).tags`` uses NLTK's averaged-perceptron tagger (TextBlob ≥ 0.11
default), whose model must be downloaded.  refbench tags offline with TextBlob's bundled Pattern
tagger (``textblob.en.taggers.PatternTagger``: a lexicon plus contextual rules, Brill-style) and
filters punctuation exactly as ``.tags`` does.  The two taggers can disagree, so the erased span
can differ from the official one for some sentences.  Known differences: Pattern tags spatial
words such as "left" as ``VBN``/``JJ`` where the perceptron often says ``NN``; it splits "man's"
into ``man`` / ``'`` (``POS``) / ``s`` where NLTK keeps ``'s``; unknown words default to ``NN``
(capitalised ones to ``NNP``, but the sentence is lower-cased first); and it has no sentence
splitter, so multi-sentence expressions are tagged as one sequence.
"""
from __future__ import annotations

import functools
import hashlib
import random
from typing import Sequence

import torch

from refbench.core.errors import RefbenchError

NOUN_TAGS = ("NN", "NNS")
MAX_WORD_INDEX = 19   # official: word_i < 19 (so word_i + 1 stays inside the 20 token ids)
ERASED_TOKEN_ID = 0   # official: the [PAD] id


@functools.lru_cache(maxsize=1)
def _pattern_tagger():
    try:
        from textblob.en.taggers import PatternTagger
        from textblob.utils import PUNCTUATION_REGEX
    except ImportError as e:  # pragma: no cover - textblob is a dependency
        raise RefbenchError(f"entity-phrase erasing needs TextBlob ({e}); pip install textblob") from None
    return PatternTagger(), PUNCTUATION_REGEX


@functools.lru_cache(maxsize=65536)
def pos_tags(sentence: str) -> tuple[tuple[str, str], ...]:
    """``(word, tag)`` pairs of the lower-cased sentence, punctuation dropped (as TextBlob ``.tags``)."""
    tagger, punctuation = _pattern_tagger()
    return tuple((w, t) for w, t in tagger.tag(sentence.lower()) if not punctuation.match(t))


def noun_spans(tags: Sequence[tuple[str, str]], max_word_index: int = MAX_WORD_INDEX) -> list[list[int]]:
    """Runs of consecutive word indices tagged NN/NNS with index < ``max_word_index``."""
    nouns = [i for i, (word, tag) in enumerate(tags) if tag in NOUN_TAGS and i < max_word_index and word]
    spans: list[list[int]] = []
    for i in nouns:
        if spans and spans[-1][-1] == i - 1:
            spans[-1].append(i)
        else:
            spans.append([i])
    return spans


def sample_rng(seed: int, sample_id: str) -> random.Random:
    """The generator that picks a sample's span: a function of (seed, sample id) only."""
    digest = hashlib.sha256(f"dmmi-erase/{seed}/{sample_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def choose_span(sentence: str, rng: random.Random, max_word_index: int = MAX_WORD_INDEX) -> list[int]:
    """The word indices to erase: one span drawn uniformly by ``rng``; [] when there is no noun."""
    spans = noun_spans(pos_tags(sentence), max_word_index)
    return list(rng.choice(spans)) if spans else []


def erase_ids(input_ids: torch.Tensor, length: int, words: Sequence[int]) -> torch.Tensor:
    """Copy of (L,) ``input_ids`` with id 0 at positions ``w + 1`` for ``w`` in ``words`` (within ``length``)."""
    out = input_ids.clone()
    pos = [w + 1 for w in words if w + 1 < length]
    if pos:
        out[torch.tensor(pos, dtype=torch.long)] = ERASED_TOKEN_ID
    return out


def erased_input_ids(input_ids: torch.Tensor, attention_mask: torch.Tensor, sentences: Sequence[str],
                     sample_ids: Sequence[str], seed: int = 0,
                     max_word_index: int = MAX_WORD_INDEX) -> torch.Tensor:
    """Entity-erased ids E' for a batch, deterministic per sample ("once per sentence").

    Args:
        input_ids, attention_mask: (B, L) BERT ids of ``sentences`` and their 0/1 mask.
        sentences: the B raw sentences the ids were tokenized from.
        sample_ids: B ids; with ``seed`` they fix the span chosen for each sentence.
    Returns:
        (B, L) int64 ids on the device of ``input_ids``.
    """
    b = input_ids.shape[0]
    if len(sentences) != b or len(sample_ids) != b:
        raise RefbenchError(f"erasing needs one sentence and one sample_id per sample: {b} ids, "
                            f"{len(sentences)} sentences, {len(sample_ids)} sample ids")
    lengths = attention_mask.sum(dim=1).tolist()
    ids = input_ids.detach().cpu()
    rows = [erase_ids(ids[i], int(lengths[i]), choose_span(str(sentences[i]), sample_rng(seed, str(sample_ids[i])),
                                                           max_word_index))
            for i in range(b)]
    return torch.stack(rows).to(input_ids.device)
