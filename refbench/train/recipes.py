"""Training recipes as each paper states them.

A :class:`TrainRecipe` holds every number a paper gives for training (optimizer, learning
rate, weight decay, schedule, epochs, batch size, input size, token length) with the section
it comes from.  ``refbench train --model NAME --variant paper`` uses the model's paper recipe;
the ``tiny`` recipes are refbench's own (CPU-sized, for the synthetic benchmark) and say so.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from refbench.core.errors import suggest

# parameter-name patterns that get no weight decay in the LAVT-family train.py
# (norm layers, absolute position embedding, Swin relative position bias tables)
LAVT_NO_DECAY = ("norm", "absolute_pos_embed", "relative_position_bias_table")


@dataclass(frozen=True)
class TrainRecipe:
    """Everything that defines a training run, with its source.

    Attributes:
        lr, weight_decay, betas, eps: AdamW settings.
        poly_power: learning rate lr * (1 - step / total_steps) ** poly_power, per iteration.
        epochs, batch_size: the paper's numbers; batch_size is the *global* batch (reached
            by gradient accumulation when fewer devices are used).
        input_size, token_length: image side and BERT/CLIP token count.
        no_decay: parameter-name substrings that get weight decay 0 (matched case-sensitively, as the
            LAVT-family ``train.py`` matches ``'norm' in name``).
        no_decay_norm_layers: also give weight decay 0 to every parameter of a normalization layer
            (BatchNorm, LayerNorm, GroupNorm, InstanceNorm, SwitchableNorm ...), found by module type
            rather than by name (CLIP and torchvision call them ``bn1``, ``ln_1``, ``ln_final``).
        text_layers_trained: train only the first N text-encoder layers (LAVT/DMMI train.py
            optimizes BERT encoder layers 0-9); None = all.
        select_metric, select_split: the checkpoint kept as "best" maximizes this metric on
            this split (evaluated every ``eval_every_epochs``).
        model_overrides: training-only model settings the recipe changes (e.g. the loss's
            class weights), passed to the model builder; keys a model does not have are ignored.
        source: where the numbers come from.
    """

    lr: float
    weight_decay: float
    epochs: int
    batch_size: int
    input_size: int
    token_length: int = 20
    poly_power: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    no_decay: tuple[str, ...] = LAVT_NO_DECAY
    no_decay_norm_layers: bool = False
    text_layers_trained: int | None = None
    grad_clip: float | None = None
    select_metric: str = "oIoU"
    select_split: str = "val"
    eval_every_epochs: int = 1
    model_overrides: tuple[tuple[str, object], ...] = ()
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def replace(self, **changes) -> "TrainRecipe":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"], d["no_decay"], d["notes"] = list(self.betas), list(self.no_decay), list(self.notes)
        d["model_overrides"] = {k: v for k, v in self.model_overrides}
        return d


# refbench's CPU recipe for the tiny variants on the synthetic benchmark (not a paper recipe):
# sized so that one run takes at most 20 minutes on one core of the 2-core development machine
# (two runs side by side), batch 8 at 160x160, AdamW 1e-3 with poly decay and gradient clipping.
# The synthetic targets cover ~7 % of the image; with the papers' nearly unweighted losses a
# CPU-sized model stays at "all background" for several epochs, so the tiny recipe weighs the
# foreground up (LAVT/DMMI/JMCELN cross-entropy (0.5, 2.5) instead of (0.9, 1.1) / unweighted;
# MERES BCE pos_weight 3).  MagNet's BCE + Dice needs no change.
_TINY = dict(lr=1e-3, weight_decay=1e-2, batch_size=8, input_size=160, poly_power=0.9,
             no_decay=LAVT_NO_DECAY + ("bias",), select_metric="mIoU", grad_clip=1.0,
             model_overrides=(("ce_class_weights", (0.5, 2.5)), ("bce_pos_weight", 3.0)),
             source="refbench (not a paper recipe): 20 CPU-minutes on the synthetic benchmark, batch 8, 160x160")
# epochs per model: what fits in 20 minutes on one core (two runs side by side) at the measured
# speed (steps/s at batch 8, 160x160: LAVT 2.2, JMCELN 2.4, MERES 3.0, DMMI 1.3, MagNet 0.9;
# synth/train small = 424 steps per epoch; validation on synth/val after every epoch)
_TINY_EPOCHS = {"lavt": 5, "magnet": 2, "dmmi": 3, "meres": 8, "jmceln": 6}

RECIPES: dict[tuple[str, str], TrainRecipe] = {
    ("lavt", "paper"): TrainRecipe(
        lr=5e-5, weight_decay=1e-2, epochs=40, batch_size=32, input_size=480, text_layers_trained=10,
        select_metric="oIoU",
        source="LAVT (Yang et al., CVPR 2022) §4.1: AdamW, lr 5e-5, wd 0.01, poly decay, 40 epochs, batch 32, 480x480",
        notes=("official train.py: BERT encoder layers 0-9 optimized; no decay on norm/pos-embed/rel-pos-bias; "
               "best checkpoint by val oIoU",)),
    ("magnet", "paper"): TrainRecipe(
        lr=5e-5, weight_decay=1e-2, epochs=40, batch_size=32, input_size=480, select_metric="oIoU",
        source="MagNet supplementary §3: AdamW wd 0.01, lr 5e-5, polynomial decay, 40 epochs, batch 32, "
               "480x480 without augmentation, 20 tokens; MG corruption 0.15, 8-layer predictor; tau1 0.1, tau2 0.3",
        notes=("the paper follows LAVT; which BERT layers are trained is not stated: all are",)),
    ("magnet", "all"): TrainRecipe(
        lr=5e-5, weight_decay=1e-2, epochs=40, batch_size=32, input_size=448, select_metric="oIoU",
        source="MagNet supplementary §3 recipe at the 448x448 input of magnet_all.pth",
        notes=("the multi-dataset training mixture is not described in the paper",)),
    ("dmmi", "paper"): TrainRecipe(
        lr=5e-5, weight_decay=1e-2, epochs=60, batch_size=8, input_size=448, text_layers_trained=10,
        select_metric="oIoU",
        source="DMMI (Hu et al., ICCV 2023) §4.1: AdamW wd 0.01, 60 epochs, batch 8, lr 5e-5 poly, 448x448, 20 tokens",
        notes=("official train.sh differs: 40 epochs, batch 2 per GPU, 480x480 (use --epochs/--batch-size/--input-size "
               "to follow the code); released checkpoints are evaluated at 480",
               "official train.py: BERT layers 0-9 optimized; best checkpoint by oIoU on the --split it evaluates")),
    ("dmmi", "resnet101"): TrainRecipe(
        lr=5e-5, weight_decay=1e-2, epochs=60, batch_size=8, input_size=448, text_layers_trained=10,
        select_metric="oIoU", source="DMMI §4.1 (same recipe for the ResNet-101 backbone)"),
    ("meres", "paper"): TrainRecipe(
        lr=3e-5, weight_decay=1e-2, epochs=40, batch_size=16, input_size=480, select_metric="mIoU",
        source="MERES §4.1/App. C: AdamW lr 3e-5, polynomial decay, 40 epochs, batch 16, 480x480",
        notes=("weight decay is not stated in the paper: 0.01 as in LAVT, its base",
               "no-decay parameters are not stated: LAVT's rule (names containing norm, absolute_pos_embed, "
               "relative_position_bias_table); AdamW betas/eps not stated: PyTorch's defaults",
               "poly power is not stated: 0.9 as in LAVT; which BERT layers train is not stated: all",
               "the best checkpoint is chosen by val mIoU (not stated; mIoU is the metric MERES reports first)")),
    ("meres", "clip"): TrainRecipe(
        lr=3e-5, weight_decay=1e-2, epochs=50, batch_size=16, input_size=480, select_metric="mIoU",
        source="MERES App. E: generalization setting with the CLIP text encoder, 50 epochs",
        notes=("everything App. E does not restate is the paper recipe's, with its unstated choices",)),
    ("jmceln", "paper"): TrainRecipe(
        lr=6e-6, weight_decay=1e-2, epochs=60, batch_size=20, input_size=416, token_length=30,
        select_metric="mIoU",
        # not stated in the paper: which parameters get no weight decay.  Chosen: LAVT's name rule plus every
        # parameter of a normalization layer by module type -- matching 'norm' in the name misses the
        # CLIP encoders' BatchNorms (bn1..bn3) and LayerNorms (ln_1, ln_2, ln_final).
        no_decay_norm_layers=True,
        source="JMCELN (Huang & Satoh, EMNLP 2023) §4: AdamW lr 6e-6, poly power 0.9, 60 epochs, batch 20, "
               "416x416, sentence length 30; best checkpoint by val mIoU",
        notes=("weight decay is not stated in the paper: 0.01",
               "no-decay parameters are not stated: normalization layers (by module type), position embeddings, "
               "relative position bias tables; AdamW betas/eps not stated: PyTorch's defaults; all layers of both "
               "CLIP encoders are trained (not stated)")),
}
# The tiny recipes keep the name rule (no_decay_norm_layers off, JMCELN's included): the shipped tiny
# weights were trained with it, and `refbench train --variant tiny` reproduces them.
for _m, _epochs in _TINY_EPOCHS.items():
    RECIPES[(_m, "tiny")] = TrainRecipe(**_TINY, epochs=_epochs, token_length=30 if _m == "jmceln" else 20)


def get_recipe(model: str, variant: str) -> TrainRecipe:
    """The recipe for (model, variant); a clear error listing the known ones otherwise."""
    try:
        return RECIPES[(model, variant)]
    except KeyError:
        raise suggest(f"{model}/{variant}", [f"{m}/{v}" for m, v in RECIPES], "training recipe") from None
