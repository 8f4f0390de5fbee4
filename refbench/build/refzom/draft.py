"""A generated Ref-ZOM ref before ids and splits are assigned."""
from __future__ import annotations

from dataclasses import dataclass

SOURCES = ("zero", "one", "many")
# How a ref was made (written to each ref as ``refbench_method``; the official loaders ignore it).
METHODS = ("refer", "template", "join", "caption", "zero-caption", "zero-refer")


@dataclass(frozen=True)
class Draft:
    """image_id; source: ``zero`` | ``one`` | ``many`` (Ref-ZOM's field); method: one of
    :data:`METHODS`; ann_ids: the targets, sorted (empty for zero); sentences: raw texts."""

    image_id: int
    source: str
    method: str
    ann_ids: tuple[int, ...]
    sentences: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(set(self.ann_ids))
        ok = {"zero": n == 0, "one": n == 1, "many": n >= 2}[self.source]
        if not ok or self.method not in METHODS or not self.sentences:
            raise ValueError(f"inconsistent draft {self}")
