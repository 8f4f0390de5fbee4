"""The unit of evaluation: one sentence about one image, with its target annotations."""
from __future__ import annotations

from dataclasses import dataclass

from refbench.core.records import TYPES  # noqa: F401  (re-exported: the data layer's sample types)


@dataclass(frozen=True)
class Sample:
    """One referring sentence (RIS papers evaluate per sentence).

    sample_id: ``str(sent_id)``, unique within a split; ref_id / sent_id / image_id: ids
    from the annotation files; image_file: file name relative to the image directory;
    sentence: raw text (what the official loaders tokenize); ann_ids: target instance
    ids (empty for a zero-target sentence); category_ids: their categories; type:
    ``zero`` | ``one`` | ``many``; split: the split it was selected for; height, width:
    original image size in pixels.
    """

    sample_id: str
    ref_id: int
    sent_id: int
    image_id: int
    image_file: str
    sentence: str
    ann_ids: tuple[int, ...]
    category_ids: tuple[int, ...]
    type: str
    split: str
    height: int
    width: int


@dataclass(frozen=True)
class Ref:
    """A referred object (or set of objects) with all its sentences, format-independent.

    split: the split string stored in the file (``testAB`` etc. possible); sentences:
    ``(sent_id, raw)`` pairs in file order.
    """

    ref_id: int
    image_id: int
    ann_ids: tuple[int, ...]
    category_ids: tuple[int, ...]
    type: str
    split: str
    sentences: tuple[tuple[int, str], ...]
