"""DMMI (Hu et al., ICCV 2023): Swin-B or ResNet-101 + multi-scale bi-directional attention,
text-to-image decoder with transformer fusion, training-time context-clue recovery.

    from refbench.core.models import build_model
    model = build_model("dmmi", variant="paper")        # or "resnet101", "tiny"
    model.load_checkpoint("dmmi_swin_refcocog_umd.pth")  # official {'model', 'bert_model'} layout
"""
from baselines.common.pretrained import BERT_BASE_UNCASED, RESNET101_IMAGENET, SWIN_B_22K
from refbench.core.models import Checkpoint, Cost, ModelInfo

_SOURCE = "DMMI README (toggle1995/RIS-DMMI), Google Drive / Baidu"
# The official README links the weights without stating file names: save them under these names
# (or pass any path to --checkpoint / load_checkpoint).
MODEL_INFO = ModelInfo(
    name="dmmi",
    builder="baselines.dmmi.model:build",
    configs="baselines.dmmi.config:CONFIGS",
    variants=("paper", "resnet101", "tiny"),
    # DMMI's test.py on REFER data: LAVT's loop with DMMI's union GT (its refer.py), for every variant
    protocol="dmmi",
    binarize="argmax",
    paper="Hu et al., Beyond One-to-One: Rethinking the Referring Image Segmentation, ICCV 2023",
    checkpoints=(
        Checkpoint("dmmi_swin_refcocog_umd.pth", "paper", ("refcocog-umd",), _SOURCE,
                   note="official weights, save under this name; README oIoU 63.46 / mIoU 66.48"),
        Checkpoint("dmmi_res101_refcocog_umd.pth", "resnet101", ("refcocog-umd",), _SOURCE,
                   note="official weights, save under this name; README oIoU 59.02 / mIoU 62.59"),
        Checkpoint("dmmi_swin_refzom.pth", "paper", ("ref-zom",), _SOURCE,
                   note="official weights, save under this name; evaluated under refzom; README oIoU 68.77 / "
                        "mIoU 68.25"),
        Checkpoint("dmmi_tiny_synth.pt", "tiny", ("synth",), "shipped with refbench (baselines/dmmi/weights)",
                   kind="shipped", note="trained on synth/train by refbench's tiny recipe"),
    ),
    # measured with benchmarks/model_speed.py --threads 2 --batch 1 (fp32 CPU seconds per sample on a 2-core
    # AMD EPYC; forward GFLOPs per sample at the variant's input size, 2 FLOPs per multiply-add)
    # DMMI §4.1 / official train.py: Swin-B ImageNet-22k (or torchvision's ImageNet ResNet-101) and BERT-base
    pretrained={"paper": (SWIN_B_22K, BERT_BASE_UNCASED), "resnet101": (RESNET101_IMAGENET, BERT_BASE_UNCASED)},
    costs={"paper": Cost(cpu_s_per_sample=5.49, gflops=722.1), "resnet101": Cost(cpu_s_per_sample=5.95, gflops=807.6),
           "tiny": Cost(cpu_s_per_sample=0.039, gflops=1.04)},
    description="Swin-B/ResNet-101 + multi-scale bi-directional attention (MBA) at each stage, BERT-base, "
                "768-wide decoder with 2 transformer fusion layers; 480x480 square input, argmax. "
                "Protocol dmmi (lavt with DMMI's union GT); on Ref-ZOM data refzom",
)
