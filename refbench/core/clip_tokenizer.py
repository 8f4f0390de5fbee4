"""OpenAI CLIP's byte-level BPE tokenizer, read from a local vocabulary, without ftfy or regex.

CLIP (Radford et al., ICML 2021) tokenizes as its ``SimpleTokenizer`` does, step by step:

1. clean: ``ftfy.fix_text``, ``html.unescape`` twice, strip; collapse whitespace; lower-case;
2. split into words with the pattern ``<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|
   \\p{L}+|\\p{N}|[^\\s\\p{L}\\p{N}]+`` (a run of letters, a single digit, a run of other symbols);
3. map each word's UTF-8 bytes to printable characters (``bytes_to_unicode``), mark its end
   with ``</w>`` and merge symbol pairs by the ranks of the 48,894 BPE merges;
4. look the pieces up in the 49,408-token vocabulary (256 bytes, 256 bytes + ``</w>``, the
   merges, ``<|startoftext|>`` = 49406, ``<|endoftext|>`` = 49407);
5. ``[49406] + ids + [49407]``; longer than the context: keep the first ``length`` ids and put
   ``<|endoftext|>`` in the last place (``truncate=True``, as CRIS tokenizes); pad with 0.

The attention mask is 1 on the ``<|startoftext|> … <|endoftext|>`` span.  (CRIS derives its
padding mask from ``ids == 0``, which also masks a real ``!`` token, id 0; the span is what
that mask means to say.)

Differences from the reference implementation, none of which touches ASCII text:

* the word split runs on the standard library: ASCII text through an equivalent ``re``
  pattern, other text through a scanner that classifies characters with ``unicodedata``
  (letters = categories L*, numbers = N*, whitespace = White_Space), so no ``regex``;
* cleaning uses ``ftfy.fix_text`` when ftfy is installed; otherwise ftfy's character fixes are
  applied (terminal escapes, C0 controls, Latin ligatures, full/half width forms, curly
  quotes, NFC), all but its mojibake repair (e.g. ``"sÃ³"`` -> ``"só"``).

The vocabulary is ``bpe_simple_vocab_16e6.txt.gz`` (MIT, OpenAI), vendored in
``refbench/core/vocab`` with its licence; any other copy can be passed as ``path``.
"""
from __future__ import annotations

import gzip
import html
import os
import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from refbench.core.errors import RefbenchError

DEFAULT_VOCAB = Path(__file__).resolve().parent / "vocab" / "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408
NUM_MERGES = VOCAB_SIZE - 2 * 256 - 2  # 48,894
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
SOT_ID, EOT_ID = 49406, 49407
CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")

# Step 2 for ASCII text: the reference pattern with \p{L} = [a-z] (text is lower-cased),
# \p{N} = [0-9] and \s = [ \t\n\v\f\r] (re.ASCII; the White_Space characters of ASCII).
_ASCII_WORDS = re.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+",
    re.IGNORECASE | re.ASCII)


@lru_cache()
def bytes_to_unicode() -> dict[int, str]:
    """Byte -> printable character: printable Latin-1 bytes map to themselves, the other 68
    bytes (controls, space, …) to U+0100 onwards in byte order (CLIP / GPT-2)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


# -- step 1: cleaning -------------------------------------------------------------------------
_ANSI_ESCAPE = re.compile("\033\\[((?:\\d|;)*)([a-zA-Z])")
_CONTROL = {i: None for i in [*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F, *range(0x206A, 0x2070),
                              0xFEFF, *range(0xFFF9, 0xFFFD)]}
_QUOTES = {**{i: "'" for i in (0x02BC, 0x2018, 0x2019, 0x201A, 0x201B)}, **{i: '"' for i in range(0x201C, 0x2020)}}
_LIGATURES = {ord(k): v for k, v in {
    "Ĳ": "IJ", "ĳ": "ij", "ŉ": "ʼn", "Ǳ": "DZ", "ǲ": "Dz", "ǳ": "dz", "Ǆ": "DŽ", "ǅ": "Dž", "ǆ": "dž",
    "Ǉ": "LJ", "ǈ": "Lj", "ǉ": "lj", "Ǌ": "NJ", "ǋ": "Nj", "ǌ": "nj",
    "ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "ſt", "ﬆ": "st"}.items()}


@lru_cache()
def _width_map() -> dict[int, str]:
    """Full-/half-width forms (U+FF01–U+FFEF) -> their NFKC form; ideographic space -> space."""
    table = {0x3000: " "}
    for i in range(0xFF01, 0xFFF0):
        alt = unicodedata.normalize("NFKC", chr(i))
        if alt != chr(i):
            table[i] = alt
    return table


def _fix_text_without_ftfy(text: str) -> str:
    """ftfy's character-level fixes (not its mojibake repair), repeated to a fixed point."""
    while True:
        before = text
        text = text.translate(_LIGATURES).translate(_width_map()).translate(_QUOTES)
        text = _ANSI_ESCAPE.sub("", text.replace("\r\n", "\n")).translate(_CONTROL)
        text = unicodedata.normalize("NFC", text)
        if text == before:
            return text


def _fix_text(text: str) -> str:
    try:
        import ftfy
    except ImportError:
        return _fix_text_without_ftfy(text)
    return ftfy.fix_text(text)


def clean_text(text: str) -> str:
    """Step 1: fix, unescape HTML twice, collapse whitespace, lower-case."""
    text = html.unescape(html.unescape(_fix_text(text))).strip()
    return " ".join(text.split()).lower()


# -- step 2: word split -----------------------------------------------------------------------
def _char_class(ch: str) -> str:
    """'L' letter, 'N' number, 'S' White_Space, 'O' other (Unicode general categories)."""
    cat = unicodedata.category(ch)
    if cat[0] in "LN":
        return cat[0]
    if cat in ("Zs", "Zl", "Zp") or ch in "\t\n\x0b\x0c\r\x85":
        return "S"
    return "O"


def split_words(text: str) -> list[str]:
    """The reference pattern's ``findall`` on cleaned (lower-case) text."""
    if text.isascii():
        return _ASCII_WORDS.findall(text)
    words, i, n = [], 0, len(text)
    classes = [_char_class(c) for c in text]
    while i < n:
        for special in (SOT, EOT):  # alternatives are tried in the pattern's order
            if text.startswith(special, i):
                words.append(special)
                i += len(special)
                break
        else:
            hit = next((c for c in CONTRACTIONS if text.startswith(c, i)), None)
            if hit is not None:
                words.append(hit)
                i += len(hit)
                continue
            kind = classes[i]
            if kind == "S":
                i += 1
                continue
            if kind == "N":
                words.append(text[i])
                i += 1
                continue
            j = i + 1
            while j < n and classes[j] == kind:  # a run of letters, or of "other" symbols
                j += 1
            words.append(text[i:j])
            i = j
    return words


def _pairs(word: tuple[str, ...]) -> set[tuple[str, str]]:
    return set(zip(word[:-1], word[1:]))


class CLIPTokenizer:
    """CLIP BPE -> fixed-length ids and attention mask (the ``Tokenizer`` protocol of
    :mod:`refbench.core.tokenize`, kind ``"clip"``).

    Args:
        length: ids per sentence (the text context; JMCELN 30, CRIS 17, CLIP 77).
        path: a ``bpe_simple_vocab_16e6.txt.gz`` (or its unzipped ``.txt``) or a directory
            holding one; default: the vendored copy.
    """

    def __init__(self, length: int = 77, path: str | os.PathLike | None = None) -> None:
        if length < 2:
            raise RefbenchError(f"CLIP token length must be at least 2 (<|startoftext|> and <|endoftext|>), got {length}")
        self.length = int(length)
        self.vocab_file = _vocab_file(path)
        merges = _read_merges(self.vocab_file)
        byte_chars = list(bytes_to_unicode().values())
        vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges] + [SOT, EOT]
        self.encoder: dict[str, int] = {tok: i for i, tok in enumerate(vocab)}
        self.decoder: dict[int, str] = dict(enumerate(vocab))
        self.bpe_ranks: dict[tuple[str, str], int] = {m: i for i, m in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self._cache: dict[str, tuple[str, ...]] = {SOT: (SOT,), EOT: (EOT,)}

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    # -- step 3: byte-pair merges -----------------------------------------------------------------
    def bpe(self, word: str) -> tuple[str, ...]:
        """BPE pieces of one word (already mapped through ``bytes_to_unicode``), last one with ``</w>``."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        symbols = tuple(word[:-1]) + (word[-1] + "</w>",)
        pairs = _pairs(symbols)
        while pairs:
            best = min(pairs, key=lambda p: self.bpe_ranks.get(p, NUM_MERGES))
            if best not in self.bpe_ranks:
                break
            first, second = best
            merged: list[str] = []
            i = 0
            while i < len(symbols):
                if i < len(symbols) - 1 and symbols[i] == first and symbols[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = tuple(merged)
            pairs = _pairs(symbols) if len(symbols) > 1 else set()
        self._cache[word] = symbols
        return symbols

    def encode_text(self, sentence: str) -> list[int]:
        """Steps 1–4: the BPE ids of a sentence, without <|startoftext|>/<|endoftext|>."""
        ids: list[int] = []
        for word in split_words(clean_text(sentence)):
            mapped = "".join(self.byte_encoder[b] for b in word.encode("utf-8"))
            ids.extend(self.encoder[piece] for piece in self.bpe(mapped))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> text (``</w>`` becomes a space; special tokens kept; padding 0 is ``!``)."""
        text = "".join(self.decoder[int(i)] for i in ids)
        special = {SOT, EOT}
        out = bytearray()
        for piece in re.split(f"({re.escape(SOT)}|{re.escape(EOT)})", text):
            if piece in special:
                out += piece.encode()
            else:
                out += bytes(self.byte_decoder[c] for c in piece)
        return out.decode("utf-8", errors="replace").replace("</w>", " ")

    # -- step 5: fixed length ----------------------------------------------------------------------
    def encode(self, sentence: str) -> tuple[list[int], list[int]]:
        """(input_ids, attention_mask), both ``length`` long (see the module doc, step 5)."""
        ids = [SOT_ID] + self.encode_text(sentence) + [EOT_ID]
        if len(ids) > self.length:
            ids = ids[: self.length]
            ids[-1] = EOT_ID
        n = len(ids)
        return ids + [0] * (self.length - n), [1] * n + [0] * (self.length - n)

    def encode_batch(self, sentences: Sequence[str]) -> tuple[list[list[int]], list[list[int]]]:
        pairs = [self.encode(s) for s in sentences]
        return [p[0] for p in pairs], [p[1] for p in pairs]


def _vocab_file(path: str | os.PathLike | None) -> Path:
    if path is None:
        p = DEFAULT_VOCAB
        if not p.is_file():
            raise RefbenchError(f"{p}: the vendored CLIP vocabulary is missing; reinstall refbench or pass a "
                                f"tokenizer path (bpe_simple_vocab_16e6.txt.gz)")
        return p
    p = Path(path).expanduser()
    if p.is_dir():
        found = [p / n for n in ("bpe_simple_vocab_16e6.txt.gz", "bpe_simple_vocab_16e6.txt") if (p / n).is_file()]
        if not found:
            raise RefbenchError(f"tokenizer path {path}: no bpe_simple_vocab_16e6.txt(.gz) there; pass CLIP's BPE "
                                f"vocabulary file or its directory")
        p = found[0]
    if not p.is_file():
        raise RefbenchError(f"tokenizer path {path} does not exist; pass CLIP's bpe_simple_vocab_16e6.txt.gz")
    return p


@lru_cache(maxsize=4)
def _read_merges(path: Path) -> tuple[tuple[str, str], ...]:
    """The 48,894 merges: lines 1 … 48,894 of the file (line 0 is a version header)."""
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
        lines = raw.decode("utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise RefbenchError(f"{path}: cannot read the CLIP BPE vocabulary ({type(e).__name__}: {e}); "
                            f"pass an intact bpe_simple_vocab_16e6.txt.gz") from None
    merges = [tuple(line.split()) for line in lines[1: NUM_MERGES + 1]]
    if len(merges) != NUM_MERGES or any(len(m) != 2 for m in merges):
        raise RefbenchError(f"{path}: expected {NUM_MERGES} BPE merges (pairs) after the header, found "
                            f"{sum(len(m) == 2 for m in merges)}; this is not CLIP's bpe_simple_vocab_16e6")
    return tuple(merges)  # type: ignore[return-value]


def get_clip_tokenizer(length: int = 77, path: str | os.PathLike | None = None) -> CLIPTokenizer:
    """Factory registered as tokenizer kind ``"clip"`` (``refbench.core.tokenize``)."""
    return CLIPTokenizer(length=length, path=path)
