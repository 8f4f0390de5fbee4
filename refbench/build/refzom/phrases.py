"""Noun phrases from TextBlob's offline Pattern chunker, and their head nouns' categories.

``TextBlob(s).parse()`` (Pattern: a lexicon tagger with Brill-style rules and a rule
chunker; no NLTK corpora needed) gives ``word/TAG/CHUNK/PNP`` tokens.  A noun phrase is a
``B-NP I-NP*`` run; its head is the last noun (``NN*``) or personal pronoun in it, or the
last word; the longest lexicon compound ending at the head ("teddy bear", "hot dog") is
looked up before the head alone, and compounds the tagger splits ("teddy/NN bear/VB",
"stop/VB sign/NN") are put back into one noun phrase first.  The *subject* is the first
noun phrase, looking through a collective or picture prefix ("a group of | a herd of |
a picture of" + NP).

Pattern's tagger makes mistakes ("left zebra" tags *left* as a verb); callers that need
certainty combine the phrase view with :meth:`Lexicon.scan` over all words.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from refbench.build.refzom.lexicon import Lexicon
from refbench.core.errors import RefbenchError

NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
                "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
                "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "one": 1, "both": 2, "pair": 2,
                "couple": 2}
# Collective / picture nouns that let the noun phrase after "of" be the subject.
TRANSPARENT = frozenset({
    "group", "herd", "flock", "bunch", "couple", "pair", "team", "crowd", "number", "lot", "lots", "row", "line",
    "set", "pile", "family", "pack", "collection", "bundle", "stack", "fleet", "school", "gaggle", "troop",
    "picture", "photo", "photograph", "image", "view", "shot", "closeup", "close-up", "snapshot", "scene",
})
NOUN_TAGS = ("NN", "NNS", "NNP", "NNPS", "PRP")


@dataclass(frozen=True)
class Token:
    """One parsed word: lower-case text, Penn tag, chunk tag (``B-NP`` ...)."""

    word: str
    tag: str
    chunk: str


@dataclass(frozen=True)
class NounPhrase:
    """A noun phrase: token span [start, end) of the sentence, head word (or compound) and
    its categories (``cats``: every word sense; ``names``: words naming the whole
    category); ``plural_tag``: the head is tagged NNS/NNPS."""

    start: int
    end: int
    head: str
    head_index: int
    cats: frozenset[int]
    names: frozenset[int]
    plural_tag: bool

    def words(self, tokens: list[Token]) -> list[str]:
        return [t.word for t in tokens[self.start:self.end]]


@dataclass(frozen=True)
class Parsed:
    """A parsed sentence: tokens, noun phrases in order, index of the subject phrase (or -1)."""

    text: str
    tokens: list[Token]
    phrases: list[NounPhrase]
    subject: int


def _pattern_parser():
    try:
        from textblob.parsers import PatternParser
    except ImportError as e:  # pragma: no cover - textblob is a dependency
        raise RefbenchError(f"noun-phrase chunking needs TextBlob ({e}); pip install -c constraints.txt textblob") from None
    return PatternParser()


def _tokens(tagged: str) -> list[Token]:
    out = []
    for line in tagged.split("\n"):
        for item in line.split(" "):
            parts = item.split("/")
            if len(parts) < 3:
                continue
            # a word containing '/' is written with '&slash;' by Pattern
            out.append(Token(parts[0].replace("&slash;", "/").lower(), parts[1], parts[2]))
    return out


def number_value(word: str) -> int | None:
    """The count a word states ("two" -> 2, "3" -> 3), or None."""
    if word.isdigit():
        return int(word)
    return NUMBER_WORDS.get(word)


class Chunker:
    """Parses sentences (cached by text) into :class:`Parsed` with lexicon-resolved heads."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        self._parser = _pattern_parser()
        self._cache: dict[str, Parsed] = {}

    def parse(self, sentence: str) -> Parsed:
        hit = self._cache.get(sentence)
        if hit is None:
            hit = self._parse(sentence)
            if len(self._cache) < 100_000:
                self._cache[sentence] = hit
        return hit

    def _parse(self, sentence: str) -> Parsed:
        text = re.sub(r"\s+", " ", sentence).strip()
        tokens = self._merge_compounds(_tokens(self._parser.parse(text))) if text else []
        phrases = []
        i = 0
        while i < len(tokens):
            if tokens[i].chunk.endswith("-NP"):
                j = i + 1
                while j < len(tokens) and tokens[j].chunk == "I-NP":
                    j += 1
                phrases.append(self._phrase(tokens, i, j))
                i = j
            else:
                i += 1
        return Parsed(text, tokens, phrases, self._subject(tokens, phrases))

    def _merge_compounds(self, tokens: list[Token]) -> list[Token]:
        """Put multi-word category names the tagger split ("teddy/NN bear/VB", "stop/VB sign/NN")
        back into one noun phrase ending in a noun, with a determiner right before them."""
        lex = self.lexicon
        out = list(tokens)
        i = 0
        while i < len(out):
            for n in range(min(lex.max_words, len(out) - i), 1, -1):
                if not lex.lookup(" ".join(t.word for t in out[i:i + n])):
                    continue
                first = out[i]
                start_np = first.chunk.endswith("-NP")
                if not start_np and i > 0 and out[i - 1].tag == "DT" and not out[i - 1].chunk.endswith("-NP"):
                    out[i - 1] = Token(out[i - 1].word, out[i - 1].tag, "B-NP")
                    start_np = True
                    first_chunk = "I-NP"
                else:
                    first_chunk = first.chunk if start_np else "B-NP"
                out[i] = Token(first.word, first.tag, first_chunk)
                for k in range(i + 1, i + n):
                    last = k == i + n - 1
                    tag = out[k].tag if not last else ("NNS" if out[k].tag in ("NNS", "VBZ") else
                                                       out[k].tag if out[k].tag.startswith("NN") else "NN")
                    out[k] = Token(out[k].word, tag, "I-NP")
                i += n - 1
                break
            i += 1
        return out

    def _phrase(self, tokens: list[Token], start: int, end: int) -> NounPhrase:
        h = next((k for k in range(end - 1, start - 1, -1) if tokens[k].tag.startswith(NOUN_TAGS)), end - 1)
        lex = self.lexicon
        head = tokens[h].word
        for n in range(min(lex.max_words, h - start + 1), 1, -1):   # longest compound ending at the head
            compound = " ".join(t.word for t in tokens[h - n + 1:h + 1])
            if lex.lookup(compound):
                head = compound
                break
        return NounPhrase(start, end, head, h, lex.lookup(head), lex.lookup(head, names_only=True),
                          tokens[h].tag in ("NNS", "NNPS"))

    @staticmethod
    def _subject(tokens: list[Token], phrases: list[NounPhrase]) -> int:
        if not phrases:
            return -1
        k = 0
        while (k + 1 < len(phrases) and tokens[phrases[k].head_index].word in TRANSPARENT
               and phrases[k].end + 1 == phrases[k + 1].start and tokens[phrases[k].end].word == "of"):
            k += 1
        return k


def clean_sentence(text: str) -> str:
    """Whitespace collapsed, trailing sentence punctuation dropped ("A dog." -> "A dog")."""
    return re.sub(r"[\s.!;:,]+$", "", re.sub(r"\s+", " ", str(text)).strip())
