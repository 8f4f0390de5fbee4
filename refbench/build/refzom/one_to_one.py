"""One-to-one refs (DMMI §4): sampled REFER refs, and templates for single-instance categories.

A REFER object keeps all sentences of one of its source refs (RefCOCO, RefCOCO+ and
RefCOCOg describe the same annotation separately; one of them is drawn).  A template
ref ("the giraffe") needs a category with exactly one instance and no crowd annotation.
"""
from __future__ import annotations

import numpy as np

from refbench.build.refzom.draft import Draft
from refbench.build.refzom.lexicon import Lexicon
from refbench.build.refzom.sources import Sources
from refbench.build.refzom.templates import one_target


def single_instance(src: Sources, image_id: int) -> list[tuple[int, int]]:
    """(category_id, ann_id) of every category with exactly one, non-crowd, instance in the image."""
    return [(c, anns[0]) for c, anns in sorted(src.categories_in(image_id).items())
            if len(anns) == 1 and anns[0] not in src.crowd]


def refer_one(rng: np.random.Generator, src: Sources, image_id: int, exclude: set[int] = frozenset()) -> Draft | None:
    """A REFER object of the image (not in ``exclude``) with one source ref's sentences."""
    objs = [a for a in src.refer_images.get(image_id, ()) if a not in exclude]
    if not objs:
        return None
    aid = objs[int(rng.integers(len(objs)))]
    pools = src.refer_sentences[aid]
    return Draft(image_id, "one", "refer", (aid,), pools[int(rng.integers(len(pools)))])


def template_one(rng: np.random.Generator, src: Sources, lexicon: Lexicon, image_id: int,
                 exclude: set[int] = frozenset()) -> Draft | None:
    """"the <category>" for a single-instance category of the image (not in ``exclude``)."""
    singles = [(c, a) for c, a in single_instance(src, image_id) if a not in exclude]
    if not singles:
        return None
    cid, aid = singles[int(rng.integers(len(singles)))]
    return Draft(image_id, "one", "template", (aid,), (one_target(rng, lexicon.display(cid)[0]),))


def one_to_one(rng: np.random.Generator, src: Sources, lexicon: Lexicon, image_id: int, n: int = 1,
               template_share: float = 0.25) -> list[Draft]:
    """Up to ``n`` one-to-one refs on distinct objects: a template with probability
    ``template_share`` (or when no REFER object is left), else a REFER ref."""
    out: list[Draft] = []
    used: set[int] = set()
    makers = {"template": lambda: template_one(rng, src, lexicon, image_id, used),
              "refer": lambda: refer_one(rng, src, image_id, used)}
    for _ in range(n):
        order = ("template", "refer") if rng.random() < template_share else ("refer", "template")
        d = makers[order[0]]() or makers[order[1]]()
        if d is None:
            break
        used.update(d.ann_ids)
        out.append(d)
    return out


def has_one_candidate(src: Sources, image_id: int) -> bool:
    return bool(src.refer_images.get(image_id)) or bool(single_instance(src, image_id))
