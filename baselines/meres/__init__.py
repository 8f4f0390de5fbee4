"""MERES ("Visual Expression for Referring Expression Segmentation"): Swin-B + BERT-base, a visual
expression extractor (adaptive top-k selection, semantic refinement, visual relationship modeling)
and a decoder guided by {enhanced linguistic tokens, visual expression tokens}.

There is no public code or checkpoint; this is refbench's reference implementation from the paper
(../shared/papers/meres.txt).

    from refbench.core.models import build_model
    model = build_model("meres", variant="paper")            # or "clip", "tiny"
    model = build_model("meres", variant="tiny", ablation="ve_only")   # Table 3 / 4 rows
"""
from refbench.core.models import ModelInfo

MODEL_INFO = ModelInfo(
    name="meres",
    builder="baselines.meres.model:build",
    variants=("paper", "clip", "tiny"),
    protocol="lavt",
    # the decoder ends in "a linear projection layer" to "a binary class mask" trained with BCE:
    # one logit per pixel, foreground where sigmoid > 0.5
    binarize="sigmoid>0.5",
    paper="Visual Expression for Referring Expression Segmentation (MERES), anonymous ACL submission; "
          "no public code or weights",
    checkpoints={},
    description="Swin-B + BERT-base, visual expression extractor (top-k 30% selection, masked cross-attention, "
                "MHSA) and a decoder cross-attending to {enhanced LE, VE} tokens at every stage; 480x480, "
                "1-channel logits, sigmoid>0.5. Reference implementation from the paper (no official code)",
)
