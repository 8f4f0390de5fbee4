"""LAVT (Yang et al., CVPR 2022): Swin-B + pixel-word attention at every stage + BERT-base.

    from refbench.core.models import build_model
    model = build_model("lavt", variant="paper")       # or "tiny"
    model.load_checkpoint("refcoco.pth")               # official {'model', 'bert_model'} layout
"""
from refbench.core.models import ModelInfo

MODEL_INFO = ModelInfo(
    name="lavt",
    builder="baselines.lavt.model:build",
    variants=("paper", "tiny"),
    protocol="lavt",
    binarize="argmax",
    paper="Yang et al., LAVT: Language-Aware Vision Transformer for Referring Image Segmentation, CVPR 2022",
    checkpoints={
        "refcoco.pth": "RefCOCO (UNC) train",
        "refcoco+.pth": "RefCOCO+ (UNC) train",
        "gref_umd.pth": "G-Ref (UMD) train",
        "gref_google.pth": "G-Ref (Google) train",
    },
    description="Swin-B + PWAM + language gates at each stage, BERT-base, SimpleDecoding (hidden 512); 480x480, argmax",
)
