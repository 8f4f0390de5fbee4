"""MERES ("Visual Expression for Referring Expression Segmentation"): Swin-B + BERT-base, a visual
expression extractor (adaptive top-k selection, semantic refinement, visual relationship modeling)
and a decoder guided by {enhanced linguistic tokens, visual expression tokens}.

There is no public code or checkpoint; this is refbench's reference implementation from the paper
(the MERES paper).

    from refbench.core.models import build_model
    model = build_model("meres", variant="paper")            # or "clip", "tiny"
    model = build_model("meres", variant="tiny", ablation="ve_only")   # Table 3 / 4 rows
"""
from baselines.common.pretrained import BERT_BASE_UNCASED, CLIP_RN101, SWIN_B_22K
from refbench.core.models import Checkpoint, Cost, ModelInfo

MODEL_INFO = ModelInfo(
    name="meres",
    builder="baselines.meres.model:build",
    configs="baselines.meres.config:CONFIGS",
    variants=("paper", "clip", "tiny"),
    protocol="lavt",
    # the decoder ends in "a linear projection layer" to "a binary class mask" trained with BCE:
    # one logit per pixel, foreground where sigmoid > 0.5
    binarize="sigmoid>0.5",
    paper="Visual Expression for Referring Expression Segmentation (MERES), anonymous ACL submission; "
          "no public code or weights",
    checkpoints=(
        Checkpoint("meres_{dataset}.pt", "paper", ("refcoco", "refcoco+", "refcocog-umd", "refcocog-google"),
                   "refbench train --model meres --variant paper --dataset {dataset}/train", kind="train",
                   note="no released weights: train with the paper recipe"),
        Checkpoint("meres_clip_{dataset}_seen.pt", "clip", ("refcocog-umd", "refcocog-google"),
                   "refbench train --model meres --variant clip --dataset {dataset}/train:seen", kind="train",
                   note="no released weights: generalization setting (trained on seen categories)"),
        Checkpoint("meres_tiny_synth.pt", "tiny", ("synth",), "shipped with refbench (baselines/meres/weights)",
                   kind="shipped", note="trained on synth/train by refbench's tiny recipe"),
    ),
    # measured with benchmarks/model_speed.py --threads 2 --batch 1 (fp32 CPU seconds per sample on a 2-core
    # AMD EPYC; forward GFLOPs per sample at the variant's input size, 2 FLOPs per multiply-add)
    # MERES §4.1: Swin-B ImageNet-22k + BERT-base; App. E (generalization): CLIP's text encoder (RN101's, see config)
    pretrained={"paper": (SWIN_B_22K, BERT_BASE_UNCASED), "clip": (SWIN_B_22K, CLIP_RN101)},
    costs={"paper": Cost(cpu_s_per_sample=1.98, gflops=241.6), "clip": Cost(cpu_s_per_sample=1.81, gflops=238.2),
           "tiny": Cost(cpu_s_per_sample=0.46, gflops=0.43)},
    description="Swin-B + BERT-base, visual expression extractor (top-k 30% selection, masked cross-attention, "
                "MHSA) and a decoder cross-attending to {enhanced LE, VE} tokens at every stage; 480x480, "
                "1-channel logits, sigmoid>0.5. Reference implementation from the paper (no official code)",
)
