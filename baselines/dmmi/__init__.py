"""DMMI (Hu et al., ICCV 2023): Swin-B or ResNet-101 + multi-scale bi-directional attention,
text-to-image decoder with transformer fusion, training-time context-clue recovery.

    from refbench.core.models import build_model
    model = build_model("dmmi", variant="paper")        # or "resnet101", "tiny"
    model.load_checkpoint("dmmi_swin_refcocog_umd.pth")  # official {'model', 'bert_model'} layout
"""
from refbench.core.models import ModelInfo

MODEL_INFO = ModelInfo(
    name="dmmi",
    builder="baselines.dmmi.model:build",
    variants=("paper", "resnet101", "tiny"),
    protocol="lavt",
    binarize="argmax",
    paper="Hu et al., Beyond One-to-One: Rethinking the Referring Image Segmentation, ICCV 2023",
    # The official README links the weights on Google Drive / Baidu without stating file names;
    # these keys are descriptive (rename the downloaded files, or pass any path to load_checkpoint).
    checkpoints={
        "dmmi_swin_refcocog_umd.pth": "G-Ref (UMD) train, variant paper; README oIoU 63.46 / mIoU 66.48",
        "dmmi_res101_refcocog_umd.pth": "G-Ref (UMD) train, variant resnet101; README oIoU 59.02 / mIoU 62.59",
        "dmmi_swin_refzom.pth": "Ref-ZOM train, variant paper, evaluate with --protocol refzom; "
                                "README oIoU 68.77 / mIoU 68.25",
    },
    description="Swin-B/ResNet-101 + multi-scale bi-directional attention (MBA) at each stage, BERT-base, "
                "768-wide decoder with 2 transformer fusion layers; 480x480 square input, argmax. "
                "Protocol lavt; the Ref-ZOM checkpoint evaluates under refzom",
)
