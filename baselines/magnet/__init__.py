"""MagNet (Chng et al., CVPR 2024): LAVT-style Swin-B + BERT-base with the cross-modal alignment
module (CAM), a Mask2Former head with one query, and the training-side Mask Grounding and
cross-modal alignment loss.

    from refbench.core.models import build_model
    model = build_model("magnet", variant="paper")     # "all" (448, multi-dataset) or "tiny"
    model.load_checkpoint("magnet_refcoco.pth")        # official {'model': ...} layout
"""
from baselines.common.pretrained import BERT_BASE_UNCASED, SWIN_B_22K
from refbench.core.models import Checkpoint, Cost, ModelInfo

_SOURCE = "Hugging Face yxchng/magnet_weights"
MODEL_INFO = ModelInfo(
    name="magnet",
    builder="baselines.magnet.model:build",
    configs="baselines.magnet.config:CONFIGS",
    variants=("paper", "all", "tiny"),
    protocol="lavt",
    binarize="sigmoid>0.5",
    paper="Chng et al., Mask Grounding for Referring Image Segmentation, CVPR 2024",
    checkpoints=(
        Checkpoint("magnet_refcoco.pth", "paper", ("refcoco",), _SOURCE, note="file name from run_test.sh"),
        Checkpoint("magnet_refcoco+.pth", "paper", ("refcoco+",), _SOURCE),
        Checkpoint("magnet_refcocog_umd.pth", "paper", ("refcocog-umd",), _SOURCE),
        Checkpoint("magnet_refcocog_google.pth", "paper", ("refcocog-google",), _SOURCE),
        Checkpoint("magnet_all.pth", "all", ("refcoco", "refcoco+", "refcocog-umd", "refcocog-google"), _SOURCE,
                   note="multi-dataset model; evaluated at 448 (lavt-448)"),
        Checkpoint("magnet_tiny_synth.pt", "tiny", ("synth",), "shipped with refbench (baselines/magnet/weights)",
                   kind="shipped", note="trained on synth/train by refbench's tiny recipe"),
    ),
    # measured with benchmarks/model_speed.py --threads 2 --batch 1 (fp32 CPU seconds per sample on a 2-core
    # AMD EPYC; forward GFLOPs per sample at the variant's input size, 2 FLOPs per multiply-add)
    # supplementary §3: Swin-B "with the official classification weights pretrained on ImageNet22K",
    # BERT-base "with the bert-base-uncased weights from Hugging-Face's Transformer library"
    pretrained={"paper": (SWIN_B_22K, BERT_BASE_UNCASED), "all": (SWIN_B_22K, BERT_BASE_UNCASED)},
    costs={"paper": Cost(cpu_s_per_sample=5.56, gflops=327.7), "all": Cost(cpu_s_per_sample=5.53, gflops=296.1),
           "tiny": Cost(cpu_s_per_sample=0.042, gflops=0.53)},
    description="Swin-B + BERT-base with CAM (pyramid PWAMs, vision->language PWAMs), Mask2Former head "
    "(1 query); 480x480, sigmoid>0.5; variant 'all' (magnet_all.pth) runs at 448 under lavt-448",
    variant_protocols={"all": "lavt-448"},
)
