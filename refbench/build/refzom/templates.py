"""Category templates (the paper's "category information with the prompt template").

One target: a category with exactly one instance in the image ("the giraffe", "the only
giraffe").  Many targets: every instance of a category present two or more times, with
the exact count in words ("both dogs", "the two cups", "all three zebras", "all the
people"); counts above :data:`MAX_NUMBER_WORD`, and categories with a crowd annotation
(whose member count COCO does not give), get count-free forms only.  Nouns come from the
lexicon's display forms, so plurals are right ("people", "sheep", "knives", "pairs of skis").
"""
from __future__ import annotations

import numpy as np

NUMBER_NAMES = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten",
                11: "eleven", 12: "twelve", 13: "thirteen", 14: "fourteen", 15: "fifteen", 16: "sixteen",
                17: "seventeen", 18: "eighteen", 19: "nineteen", 20: "twenty"}
MAX_NUMBER_WORD = max(NUMBER_NAMES)

ONE_FORMS = ("the {sg}", "the only {sg}", "the {sg} in the picture", "the {sg} in the image", "the single {sg}")
TWO_FORMS = ("both {pl}", "the two {pl}", "both of the {pl}", "the pair of {pl}", "all the {pl}")
COUNT_FORMS = ("the {n} {pl}", "all {n} {pl}", "all the {pl}", "all of the {pl}", "every {sg} in the picture")
UNCOUNTED_FORMS = ("all the {pl}", "all of the {pl}", "every {sg} in the picture", "all {pl} in the image")


def _pick(rng: np.random.Generator, forms: tuple[str, ...]) -> str:
    return forms[int(rng.integers(len(forms)))]


def one_target(rng: np.random.Generator, singular: str) -> str:
    """A sentence for the single instance of a category."""
    return _pick(rng, ONE_FORMS).format(sg=singular)


def many_targets(rng: np.random.Generator, singular: str, plural: str, count: int, counted: bool = True) -> str:
    """A sentence for all ``count`` (>= 2) instances of a category; ``counted=False`` when the
    exact number is unknown (a crowd annotation) -- then no number word is used."""
    if count < 2:
        raise ValueError(f"many_targets needs count >= 2, got {count}")
    if not counted or count > MAX_NUMBER_WORD:
        forms = UNCOUNTED_FORMS
    elif count == 2:
        # "the pair of pairs of skis" reads badly
        forms = TWO_FORMS if " of " not in plural else tuple(f for f in TWO_FORMS if "pair of" not in f)
    else:
        forms = COUNT_FORMS
    return _pick(rng, forms).format(sg=singular, pl=plural, n=NUMBER_NAMES.get(count, str(count)))


def join_sentences(parts: list[str]) -> str:
    """ "a and b", "a, b and c": expressions for different objects joined into one sentence."""
    if len(parts) < 2:
        raise ValueError("join_sentences needs at least two parts")
    return " and ".join(parts) if len(parts) == 2 else ", ".join(parts[:-1]) + " and " + parts[-1]
