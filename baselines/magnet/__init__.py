"""MagNet (Chng et al., CVPR 2024): LAVT-style Swin-B + BERT-base with the cross-modal alignment
module (CAM), a Mask2Former head with one query, and the training-side Mask Grounding and
cross-modal alignment loss.

    from refbench.core.models import build_model
    model = build_model("magnet", variant="paper")     # "all" (448, multi-dataset) or "tiny"
    model.load_checkpoint("magnet_refcoco.pth")        # official {'model': ...} layout
"""
from refbench.core.models import ModelInfo

MODEL_INFO = ModelInfo(
    name="magnet",
    builder="baselines.magnet.model:build",
    variants=("paper", "all", "tiny"),
    protocol="lavt",
    binarize="sigmoid>0.5",
    paper="Chng et al., Mask Grounding for Referring Image Segmentation, CVPR 2024",
    checkpoints={
        "magnet_refcoco.pth": "RefCOCO",
        "magnet_refcoco+.pth": "RefCOCO+",
        "magnet_refcocog_umd.pth": "G-Ref UMD",
        "magnet_refcocog_google.pth": "G-Ref Google",
        "magnet_all.pth": "multi-dataset, 448",
    },
    description="Swin-B + BERT-base with CAM (pyramid PWAMs, vision->language PWAMs), Mask2Former head "
    "(1 query); 480x480, sigmoid>0.5; variant 'all' (magnet_all.pth) runs at 448 under lavt-448",
    variant_protocols={"all": "lavt-448"},
)
