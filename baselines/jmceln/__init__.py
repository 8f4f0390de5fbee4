"""JMCELN (Huang & Satoh, EMNLP 2023): CLIP RN101 + neck + LSRAN + a cascade of learnable contextual
embeddings with Progressive Alignment Networks; implemented from the paper (no official code).

    from refbench.core.models import build_model
    model = build_model("jmceln", variant="paper")             # or "tiny"
    model.load_clip("RN101.pt")                                 # OpenAI CLIP RN101 initialisation (§4)
    ablation = build_model("jmceln", variant="paper", ablation="w/o-pan")   # Table 2 rows
"""
from refbench.core.models import ModelInfo

MODEL_INFO = ModelInfo(
    name="jmceln",
    builder="baselines.jmceln.model:build",
    variants=("paper", "tiny"),
    protocol="jmceln",
    binarize="argmax",
    paper="Huang & Satoh, Referring Image Segmentation via Joint Mask Contextual Embedding Learning and "
          "Progressive Alignment Network, EMNLP 2023",
    checkpoints={},
    description="CLIP RN101 + text transformer, Eq. 1-2 neck (C=1024), LSRAN, 6-stage cascade of 20 learnable "
                "contextual embeddings with PAN; 416x416, argmax (from the paper; no official code or weights)",
)
