"""RIS datasets: readers, split grammar, seen/unseen subsets, protocol transforms.

    from refbench.data import open_split, RISDataset, collate
    split = open_split("refcoco/val")                 # or "synth/val" (built on first use)
    ds = RISDataset(split, "lavt")                    # items: image, input_ids, attention_mask, mask, ...

Formats: REFER (RefCOCO, RefCOCO+, RefCOCOg), Ref-ZOM, gRefCOCO, and the embedded
synthetic benchmark in all three (``synth``, ``synth-zom``, ``synth-grefcoco``).
"""
from refbench.data.catalog import DATASETS, DatasetDef, get_dataset
from refbench.data.dataset import RISDataset, collate
from refbench.data.sample import TYPES, Sample
from refbench.data.split_data import SplitData, open_split
from refbench.data.splits import canonical_split, paper_split, parse_split, valid_split_names
from refbench.core.tokenize import get_tokenizer, register_tokenizer

__all__ = [
    "Sample", "TYPES", "SplitData", "open_split", "RISDataset", "collate", "parse_split", "canonical_split",
    "paper_split", "valid_split_names", "get_tokenizer", "register_tokenizer", "DATASETS", "DatasetDef", "get_dataset",
]
