"""One-to-zero refs (DMMI §4): an image paired with a sentence about something it does not show.

Sentences are drawn from other images' COCO captions or from the REFER sentence pool
(never from the image itself) and checked against the image's annotated categories
(crowd annotations included) through the lexicon.  This automatic check replaces the
paper's manual double-check; a candidate is rejected, with the first reason that applies:

``phrase-in-image``  a noun phrase's head (or head compound) maps -- as a category name,
                     synonym, subtype, hypernym or generic noun ("thing", "one") -- to a
                     category present in the image;
``word-in-image``    any word or word pair maps to a present category (a safety net for
                     chunker and tagger mistakes, e.g. "left zebra" with *left* tagged as
                     a verb; adjectives like "orange" count too);
``no-referent``      the subject noun phrase names no category of the lexicon ("a view of
                     the city", "left side"), so the check could not tell what it refers to.
Accepted sentences therefore name an absent category as their subject and nothing
present anywhere.  Rejection counts go to ``stats.json``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from refbench.build.refzom.draft import Draft
from refbench.build.refzom.lexicon import Lexicon
from refbench.build.refzom.phrases import Chunker, Parsed
from refbench.build.refzom.sources import Sources

REASONS = ("phrase-in-image", "word-in-image", "no-referent")


def rejection(parsed: Parsed, present: frozenset[int], lexicon: Lexicon) -> str | None:
    """Why a parsed sentence cannot be a zero-target sentence for an image whose categories
    are ``present`` (see module doc), or None when it can."""
    if any(ph.cats & present for ph in parsed.phrases):
        return "phrase-in-image"
    if lexicon.scan(t.word for t in parsed.tokens) & present:
        return "word-in-image"
    if parsed.subject < 0 or not parsed.phrases[parsed.subject].cats:
        return "no-referent"
    return None


@dataclass
class ZeroReport:
    """Counts of the one-to-zero search: candidates tried, accepted, rejected by reason,
    images given up on (no candidate passed within the try limit), by sentence origin."""

    tried: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    images_without_sentence: int = 0
    accepted_by_origin: Counter = field(default_factory=Counter)

    def to_json(self) -> dict:
        return {"candidates_tried": self.tried, "accepted": self.accepted,
                "rejected": {r: int(self.rejected.get(r, 0)) for r in REASONS},
                "rejected_total": int(sum(self.rejected.values())),
                "images_without_sentence": self.images_without_sentence,
                "accepted_by_origin": {k: int(v) for k, v in sorted(self.accepted_by_origin.items())}}


def draw_candidate(rng: np.random.Generator, src: Sources, image_id: int, caption_share: float) -> tuple[str, str] | None:
    """(sentence, method) from another image's captions (``zero-caption``) or the REFER pool
    (``zero-refer``); None when both pools only hold sentences of this image."""
    pools = [("zero-caption", src.caption_pool), ("zero-refer", src.refer_pool)]
    if rng.random() >= caption_share:
        pools.reverse()
    for method, pool in pools:
        for _ in range(8):
            if not pool:
                break
            iid, text = pool[int(rng.integers(len(pool)))]
            if iid != image_id:
                return text, method
    return None


def one_to_zero(rng: np.random.Generator, src: Sources, lexicon: Lexicon, chunker: Chunker, image_id: int,
                report: ZeroReport, max_tries: int = 25, caption_share: float = 0.5) -> Draft | None:
    """A zero-target ref for the image, or None if ``max_tries`` candidates all fail the check."""
    present = frozenset(src.categories_in(image_id))
    for _ in range(max_tries):
        cand = draw_candidate(rng, src, image_id, caption_share)
        if cand is None:
            break
        text, method = cand
        report.tried += 1
        why = rejection(chunker.parse(text), present, lexicon)
        if why is None:
            report.accepted += 1
            report.accepted_by_origin[method] += 1
            return Draft(image_id, "zero", method, (), (text,))
        report.rejected[why] += 1
    report.images_without_sentence += 1
    return None
