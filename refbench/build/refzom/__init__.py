"""``refbench build-dataset ref-zom``: Ref-ZOM-style datasets (zero / one / many targets) from
COCO instances, COCO captions and REFER refs, reproducibly (DMMI, ICCV 2023, §4).

    from refbench.build.refzom import RefZomConfig, build_refzom
    build_refzom("instances.json", "captions.json", "refer/data", "out/", RefZomConfig(seed=0))
    open_split("ref-zom/test", "out/")

Modules: sources (inputs), lexicon (category words), phrases (Pattern noun phrases),
templates, one_to_one / one_to_many / one_to_zero (the three kinds), split, stats,
writer (files, atomic output), builder (orchestration), config.
"""
from refbench.build.refzom.builder import build_refzom, canonical_command
from refbench.build.refzom.config import RefZomConfig

__all__ = ["build_refzom", "canonical_command", "RefZomConfig"]
