"""LAVT (Yang et al., CVPR 2022): Swin-B + pixel-word attention at every stage + BERT-base.

    from refbench.core.models import build_model
    model = build_model("lavt", variant="paper")       # or "tiny"
    model.load_checkpoint("refcoco.pth")               # official {'model', 'bert_model'} layout
"""
from baselines.common.pretrained import BERT_BASE_UNCASED, SWIN_B_22K
from refbench.core.models import Checkpoint, Cost, ModelInfo

_SOURCE = "LAVT README (yz93/LAVT-RIS), Google Drive"
MODEL_INFO = ModelInfo(
    name="lavt",
    builder="baselines.lavt.model:build",
    configs="baselines.lavt.config:CONFIGS",
    variants=("paper", "tiny"),
    protocol="lavt",
    binarize="argmax",
    paper="Yang et al., LAVT: Language-Aware Vision Transformer for Referring Image Segmentation, CVPR 2022",
    checkpoints=(
        Checkpoint("refcoco.pth", "paper", ("refcoco",), _SOURCE, note="{'model', 'bert_model'} layout"),
        Checkpoint("refcoco+.pth", "paper", ("refcoco+",), _SOURCE),
        Checkpoint("gref_umd.pth", "paper", ("refcocog-umd",), _SOURCE),
        Checkpoint("gref_google.pth", "paper", ("refcocog-google",), _SOURCE),
        Checkpoint("lavt_tiny_synth.pt", "tiny", ("synth",), "shipped with refbench (baselines/lavt/weights)",
                   kind="shipped", note="trained on synth/train by refbench's tiny recipe"),
    ),
    # measured with benchmarks/model_speed.py --threads 2 --batch 1 (fp32 CPU seconds per sample on a 2-core
    # AMD EPYC; forward GFLOPs per sample at the variant's input size, 2 FLOPs per multiply-add)
    # LAVT §4.1: Swin-B from ImageNet-22k classification weights, BERT-base from bert-base-uncased
    pretrained={"paper": (SWIN_B_22K, BERT_BASE_UNCASED)},
    costs={"paper": Cost(cpu_s_per_sample=2.5, gflops=398.0), "tiny": Cost(cpu_s_per_sample=0.016, gflops=0.82)},
    description="Swin-B + PWAM + language gates at each stage, BERT-base, SimpleDecoding (hidden 512); 480x480, argmax",
)
