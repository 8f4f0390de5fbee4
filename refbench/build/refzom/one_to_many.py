"""One-to-many refs (DMMI §4, the three ways), each with target = union of >= 2 instances.

``join``      expressions of 2 (or 3) different REFER objects of one image joined into one
              sentence: "the man on the left and the woman in red".
``template``  every instance of a category present >= 2 times: "both dogs", "the three
              cups", "all the people" (templates.py; exact counts).
``caption``   a plural noun phrase of one of the image's COCO captions whose head names a
              category present >= 2 times (Pattern chunker, phrases.py).  Accepted when it
              speaks of all of them: an explicit number must equal the instance count ("two
              zebras" with exactly two zebras, no crowd annotation); without a number only
              all-inclusive modifiers are allowed ("zebras", "the zebras", "all the
              zebras", "a herd of zebras"), and partitives ("two of the dogs", "some of the
              people"), subset words ("other", "some", "few") and subtypes ("men" for
              person) are refused.  The sentence is the whole caption when the phrase is its
              subject and is not coordinated ("two dogs playing with a frisbee"), else the
              phrase itself ("the zebras").
"""
from __future__ import annotations

import re

import numpy as np

from refbench.build.refzom.draft import Draft
from refbench.build.refzom.lexicon import Lexicon
from refbench.build.refzom.phrases import NUMBER_WORDS, TRANSPARENT, Chunker, Parsed, number_value
from refbench.build.refzom.sources import Sources
from refbench.build.refzom.templates import join_sentences, many_targets

STRATEGIES = ("join", "template", "caption")
SUBSET_WORDS = frozenset({"other", "another", "some", "few", "remaining", "rest", "each", "one", "most", "half",
                          "either", "neither", "no", "none", "single", "only", "first", "second", "third", "last",
                          "left", "right", "front", "back", "top", "bottom", "middle", "center", "far", "near"})
# Without a number, only these may precede the head: they do not narrow "zebras" to some of them.
INCLUSIVE_WORDS = frozenset({"the", "all", "both", "these", "those"})
PLURAL_CUES = frozenset({"all", "both", "these", "those"})
DETERMINERS = frozenset({"the", "a", "an", "all", "both", "these", "those", "many", "several", "some", "every"})


def multi_instance(src: Sources, image_id: int) -> dict[int, list[int]]:
    """{category_id: ann_ids} of the categories with >= 2 instances and no crowd annotation in the image.

    A crowd annotation cannot be a target (the official loaders cannot decode COCO's crowd RLE, and
    ReLA drops crowd targets), and "all the people" without the crowd's pixels would be a wrong GT,
    so a category with one is left out of many-target refs altogether."""
    return {c: anns for c, anns in sorted(src.categories_in(image_id).items())
            if len(anns) >= 2 and not any(a in src.crowd for a in anns)}


def join(rng: np.random.Generator, src: Sources, image_id: int, three_share: float = 0.3) -> Draft | None:
    """2 (or, with probability ``three_share`` when possible, 3) REFER objects' sentences joined."""
    objs = src.refer_images.get(image_id, [])
    if len(objs) < 2:
        return None
    k = 3 if len(objs) >= 3 and rng.random() < three_share else 2
    picks = [objs[int(i)] for i in rng.choice(len(objs), size=k, replace=False)]
    parts = []
    for aid in picks:
        pools = src.refer_sentences[aid]
        sents = pools[int(rng.integers(len(pools)))]
        parts.append(sents[int(rng.integers(len(sents)))])
    if len(set(parts)) < k:  # two objects described the same way: the sentence would not tell them apart
        return None
    return Draft(image_id, "many", "join", tuple(sorted(picks)), (join_sentences(parts),))


def template(rng: np.random.Generator, src: Sources, lexicon: Lexicon, image_id: int) -> Draft | None:
    """All instances of one multi-instance category (never one with a crowd annotation: :func:`multi_instance`)."""
    multi = multi_instance(src, image_id)
    if not multi:
        return None
    cids = list(multi)
    cid = cids[int(rng.integers(len(cids)))]
    anns = multi[cid]
    sg, pl = lexicon.display(cid)
    counted = not any(a in src.crowd for a in anns)  # always True here; kept so the template never counts a crowd
    return Draft(image_id, "many", "template", tuple(anns), (many_targets(rng, sg, pl, len(anns), counted),))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", text.lower())


def caption_may_match(lexicon: Lexicon, caption: str, categories: set[int]) -> bool:
    """Cheap pre-filter: some word or word pair of the caption names one of ``categories``."""
    w = _words(caption)
    grams = w + [f"{a} {b}" for a, b in zip(w, w[1:])]
    return any(lexicon.lookup(g, names_only=True) & categories for g in grams)


def phrase_targets_all(parsed: Parsed, k: int, n_instances: int, crowd: bool) -> bool:
    """Whether noun phrase ``k`` speaks of all ``n_instances`` instances of its category (module doc)."""
    toks = parsed.tokens
    ph = parsed.phrases[k]
    head_start = ph.head_index - (len(ph.head.split()) - 1)
    mods = [t for t in toks[ph.start:head_start]]
    count = None
    for t in mods:
        if t.word in SUBSET_WORDS:
            return False
        v = number_value(t.word) if t.tag == "CD" or t.word in NUMBER_WORDS else None
        if v is not None and count is None:
            count = v
    if ph.start >= 2 and toks[ph.start - 1].word == "of":  # partitive / collective in front
        q = toks[ph.start - 2].word
        if q in ("couple", "pair"):
            count = count or 2
        elif q == "both":
            count = count or 2
        elif q not in TRANSPARENT and q != "all":
            return False
    if count is not None:
        return not crowd and count == n_instances and count >= 2
    plural = ph.plural_tag or any(t.word in PLURAL_CUES for t in mods)
    return plural and all(t.word in INCLUSIVE_WORDS for t in mods)


def _sentence(parsed: Parsed, k: int) -> str:
    toks = parsed.tokens
    ph = parsed.phrases[k]
    nxt = toks[ph.end] if ph.end < len(toks) else None
    if k == parsed.subject and nxt is not None and nxt.tag != "CC" and nxt.word not in (",", "&", "and", "or"):
        return parsed.text
    words = ph.words(toks)
    return " ".join(words if words[0] in DETERMINERS or number_value(words[0]) else ["the", *words])


def caption(rng: np.random.Generator, src: Sources, lexicon: Lexicon, chunker: Chunker, image_id: int) -> Draft | None:
    """A caption noun phrase naming all instances of a multi-instance category (module doc)."""
    multi = multi_instance(src, image_id)
    caps = src.captions.get(image_id, [])
    if not multi or not caps:
        return None
    wanted = set(multi)
    for ci in rng.permutation(len(caps)):
        text = caps[int(ci)]
        if not caption_may_match(lexicon, text, wanted):
            continue
        parsed = chunker.parse(text)
        for k, ph in enumerate(parsed.phrases):
            if len(ph.names) != 1:
                continue
            cid = next(iter(ph.names))
            if cid not in multi:
                continue
            anns = multi[cid]
            if phrase_targets_all(parsed, k, len(anns), any(a in src.crowd for a in anns)):
                return Draft(image_id, "many", "caption", tuple(anns), (_sentence(parsed, k),))
    return None


def available(src: Sources, lexicon: Lexicon, image_id: int) -> list[str]:
    """The strategies that may yield a ref for the image (``caption`` after the cheap pre-filter)."""
    out = []
    if len(src.refer_images.get(image_id, ())) >= 2:
        out.append("join")
    multi = multi_instance(src, image_id)
    if multi:
        out.append("template")
        if any(caption_may_match(lexicon, c, set(multi)) for c in src.captions.get(image_id, ())):
            out.append("caption")
    return out


def one_to_many(rng: np.random.Generator, src: Sources, lexicon: Lexicon, chunker: Chunker, image_id: int,
                weights: dict[str, float], three_share: float = 0.3) -> Draft | None:
    """One many-target ref: a strategy drawn by ``weights`` among the available ones, the
    others tried in turn if it yields nothing."""
    strategies = [s for s in available(src, lexicon, image_id) if weights.get(s, 0) > 0]
    while strategies:
        w = np.array([weights[s] for s in strategies], np.float64)
        s = strategies[int(rng.choice(len(strategies), p=w / w.sum()))]
        if s == "join":
            d = join(rng, src, image_id, three_share)
        elif s == "template":
            d = template(rng, src, lexicon, image_id)
        else:
            d = caption(rng, src, lexicon, chunker, image_id)
        if d is not None:
            return d
        strategies.remove(s)
    return None
