"""JMCELN (Huang & Satoh, EMNLP 2023): CLIP RN101 + neck + LSRAN + a cascade of learnable contextual
embeddings with Progressive Alignment Networks; implemented from the paper (no official code).

    from refbench.core.models import build_model
    model = build_model("jmceln", variant="paper")             # or "tiny"
    model.load_clip("RN101.pt")                                 # OpenAI CLIP RN101 initialisation (§4)
    ablation = build_model("jmceln", variant="paper", ablation="w/o-pan")   # Table 2 rows
"""
from baselines.common.pretrained import CLIP_RN101
from refbench.core.models import Checkpoint, Cost, ModelInfo

MODEL_INFO = ModelInfo(
    name="jmceln",
    builder="baselines.jmceln.model:build",
    configs="baselines.jmceln.config:CONFIGS",
    variants=("paper", "tiny"),
    protocol="jmceln",
    binarize="argmax",
    paper="Huang & Satoh, Referring Image Segmentation via Joint Mask Contextual Embedding Learning and "
          "Progressive Alignment Network, EMNLP 2023",
    checkpoints=(
        Checkpoint("jmceln_{dataset}.pt", "paper", ("refcoco", "refcoco+", "refcocog-umd"),
                   "refbench train --model jmceln --variant paper --dataset {dataset}/train", kind="train",
                   note="no released weights: train with the paper recipe"),
        Checkpoint("jmceln_tiny_synth.pt", "tiny", ("synth",), "shipped with refbench (baselines/jmceln/weights)",
                   kind="shipped", note="trained on synth/train by refbench's tiny recipe"),
    ),
    # measured with benchmarks/model_speed.py --threads 2 --batch 1 (fp32 CPU seconds per sample on a 2-core
    # AMD EPYC; forward GFLOPs per sample at the variant's input size, 2 FLOPs per multiply-add)
    # JMCELN §4: "The text and image encoder were initiated by CLIP ... ResNet-101"
    pretrained={"paper": (CLIP_RN101,)},
    costs={"paper": Cost(cpu_s_per_sample=5.7, gflops=693.6), "tiny": Cost(cpu_s_per_sample=0.015, gflops=0.50)},
    description="CLIP RN101 + text transformer, Eq. 1-2 neck (C=1024), LSRAN, 6-stage cascade of 20 learnable "
                "contextual embeddings with PAN; 416x416, argmax (from the paper; no official code or weights)",
)
