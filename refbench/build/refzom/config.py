"""What a Ref-ZOM-style build is made of; defaults follow the published Ref-ZOM statistics."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from refbench.build.refzom.stats import (PAPER_MANY_OBJECT_RATIO, PAPER_TEST_FRACTION, PAPER_ZERO_FRACTION,
                                         PUBLISHED)
from refbench.core.errors import RefbenchError

ZERO_POOLS = ("outside-refer", "unused")


@dataclass(frozen=True)
class RefZomConfig:
    """Build settings.

    seed: every random choice derives from it; max_images: images in the output (zero +
    target; None = all usable; default the paper's 55,078); test_fraction: share of images
    in test (paper 11,329 / 55,078); zero_fraction: share of images that are one-to-zero
    images (paper 11,937 / 55,078); many_object_ratio: one-to-many targets per one-to-one
    target (paper 41,842 / 42,421); zero_pool: ``outside-refer`` (the paper's rule: images in
    no given REFER file) or ``unused`` (any image not used for one/many refs, images
    outside the REFER files first); one_per_image: one-to-one refs per target image;
    one_template_share: chance that a one-to-one ref is a template when the image also has
    REFER objects; many_weights: relative weights of the join / template / caption
    strategies; join_three_share: chance that a join has three parts; zero_caption_share:
    chance that a zero candidate comes from captions rather than the REFER pool;
    zero_max_tries: candidates tried per zero image before giving up on it.
    """

    seed: int = 0
    max_images: int | None = PUBLISHED["images"]
    test_fraction: float = PAPER_TEST_FRACTION
    zero_fraction: float = PAPER_ZERO_FRACTION
    many_object_ratio: float = PAPER_MANY_OBJECT_RATIO
    zero_pool: str = "outside-refer"
    one_per_image: int = 1
    one_template_share: float = 0.25
    many_weights: tuple[tuple[str, float], ...] = (("join", 1.0), ("template", 1.0), ("caption", 1.0))
    join_three_share: float = 0.3
    zero_caption_share: float = 0.5
    zero_max_tries: int = 25

    def validate(self) -> None:
        """Raise a RefbenchError naming the first bad setting."""
        def frac(name: str, v: float, lo_open: bool, hi_open: bool) -> None:
            if not ((v > 0 if lo_open else v >= 0) and (v < 1 if hi_open else v <= 1)):
                rng = f"{'(' if lo_open else '['}0, 1{')' if hi_open else ']'}"
                raise RefbenchError(f"--{name.replace('_', '-')} must be in {rng}, got {v}")
        frac("test_fraction", self.test_fraction, True, True)
        frac("zero_fraction", self.zero_fraction, False, True)
        for name in ("one_template_share", "join_three_share", "zero_caption_share"):
            frac(name, getattr(self, name), False, False)
        if self.max_images is not None and self.max_images < 2:
            raise RefbenchError(f"--max-images must be at least 2 (one train and one test image), got {self.max_images}")
        if self.many_object_ratio < 0:
            raise RefbenchError(f"--many-object-ratio must be >= 0, got {self.many_object_ratio}")
        if self.zero_pool not in ZERO_POOLS:
            raise RefbenchError(f"--zero-pool must be one of {', '.join(ZERO_POOLS)}, got {self.zero_pool!r}")
        if self.one_per_image < 1 or self.zero_max_tries < 1:
            raise RefbenchError("one_per_image and zero_max_tries must be >= 1")
        weights = dict(self.many_weights)
        if set(weights) - {"join", "template", "caption"} or any(w < 0 for w in weights.values()) \
                or not any(weights.values()):
            raise RefbenchError(f"many_weights must give non-negative weights to join/template/caption, got {weights}")

    def to_json(self) -> dict:
        d = asdict(self)
        d["many_weights"] = dict(self.many_weights)
        return d
