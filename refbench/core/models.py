"""The RIS model interface, what the registry knows about each model, and the model registry.

    model = refbench.models.build_model("lavt", variant="paper")
    model.load_checkpoint("lavt_refcoco.pth")          # official layout or refbench's own
    logits = model(images, input_ids, attention_mask)  # the official raw output
    masks = model.predict(images, input_ids, attention_mask)  # bool (B, H, W), official binarization

Every model, refbench's own baselines included, registers through the ``refbench.models``
entry-point group with a :class:`ModelInfo` that declares the model's facts once: variants, the
protocol its paper reports, its binarization, its official (or trainable, or shipped) checkpoint
files, the pretrained parts its paper recipe starts from, and its cost figures.  Building is lazy:
nothing model-specific is imported until a model is asked for.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from refbench.core.errors import RefbenchError, suggest
from refbench.core.protocols import protocol_for_format
from refbench.core.registry import Registry, load_target

ENTRY_POINT_GROUP = "refbench.models"
CHECKPOINT_KINDS = ("official", "train", "shipped")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file that serves one variant of a model on some datasets.

    Attributes:
        file: the file name (``refcoco.pth``); for ``train`` checkpoints it may contain ``{dataset}``.
        variant: the model variant it loads into.
        datasets: the datasets (refbench names) it was trained for and is evaluated on.
        source: where to get it (``official``), the ``refbench train`` command that makes it
            (``train``; may contain ``{dataset}``), or the package folder it ships in (``shipped``).
        kind: ``official`` (released by the authors), ``train`` (no released weights: train them with
            refbench's paper recipe) or ``shipped`` (refbench's own weights inside the package).
        note: what a user must know (layout, resolution, the README's numbers).
    """

    file: str
    variant: str
    datasets: tuple[str, ...]
    source: str
    kind: str = "official"
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in CHECKPOINT_KINDS:
            raise ValueError(f"checkpoint {self.file}: kind must be one of {CHECKPOINT_KINDS}")

    def for_dataset(self, dataset: str) -> "Checkpoint":
        """This entry with ``{dataset}`` filled in (file name and source)."""
        return Checkpoint(self.file.replace("{dataset}", dataset), self.variant, (dataset,),
                          self.source.replace("{dataset}", dataset), self.kind, self.note)


@dataclass(frozen=True)
class PretrainedPart:
    """A pretrained component a paper recipe starts from (e.g. Swin-B ImageNet-22k).

    Attributes:
        name: short name (``swin``, ``bert``, ``clip``).
        model_arg: the build/``--model-arg`` keyword that takes its path (``swin_path``).
        file_format: what the path must hold, as released (``Swin-B .pth as released by Microsoft``).
        source: where it comes from.
    """

    name: str
    model_arg: str
    file_format: str
    source: str


@dataclass(frozen=True)
class Cost:
    """Cost figures of one variant, for time estimates (``reproduce --dry-run``).

    cpu_s_per_sample: seconds per sample of a batch-1 fp32 forward on 2 CPU cores
    (benchmarks/model_speed.py); gflops: forward GFLOPs per sample at the variant's input size
    (2 FLOPs per multiply-add).
    """

    cpu_s_per_sample: float
    gflops: float


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model before building it.

    Attributes:
        name: registry name (``lavt``, ``magnet`` …).
        builder: ``"module:function"`` (or a callable) taking ``variant`` and keyword
            overrides and returning an :class:`RISModel`.
        variants: the variants the builder accepts; the first is the default.
        protocol: the evaluation protocol the model's paper reports (refbench.core.protocols).
        binarize: the official binarization rule (refbench.core.binarize).
        paper: short citation.
        checkpoints: every checkpoint file that serves a variant (official, trainable, shipped).
        pretrained: variant -> the pretrained parts its paper recipe starts from.
        costs: variant -> :class:`Cost`.
        description: one line for ``refbench models``.
        variant_protocols: variants evaluated under another protocol than ``protocol``
            (e.g. MagNet ``all`` at 448: ``{"all": "lavt-448"}``).
        configs: ``"module:attr"`` of the ``{variant: config dataclass}`` the builder starts from,
            so that callers can tell which keyword overrides a variant accepts without building it.
    """

    name: str
    builder: "str | Callable[..., RISModel]"
    variants: tuple[str, ...]
    protocol: str
    binarize: str
    paper: str = ""
    checkpoints: tuple[Checkpoint, ...] = ()
    pretrained: dict[str, tuple[PretrainedPart, ...]] = field(default_factory=dict)
    costs: dict[str, Cost] = field(default_factory=dict)
    description: str = ""
    variant_protocols: dict[str, str] = field(default_factory=dict)
    configs: str = ""

    def __post_init__(self) -> None:
        for c in self.checkpoints:
            if c.variant not in self.variants:
                raise ValueError(f"model {self.name}: checkpoint {c.file} names unknown variant {c.variant!r}")
        for v in (*self.pretrained, *self.costs, *self.variant_protocols):
            if v not in self.variants:
                raise ValueError(f"model {self.name}: unknown variant {v!r} in its facts")

    def check_variant(self, variant: str | None) -> str:
        """``variant`` (default: the first) if this model has it; did-you-mean error otherwise."""
        variant = variant or self.variants[0]
        if variant not in self.variants:
            raise suggest(variant, self.variants, f"variant of model {self.name!r}")
        return variant

    def protocol_for(self, variant: str | None, dataset_format: str | None = None) -> str:
        """The protocol the paper reports for this variant; on Ref-ZOM-style data ``refzom`` and
        on gRefCOCO-style data ``gres`` (the protocols of those benchmarks)."""
        by_format = protocol_for_format(dataset_format)
        if by_format is not None:
            return by_format
        return self.variant_protocols.get(variant or self.variants[0], self.protocol)

    def checkpoints_for(self, variant: str, dataset: str) -> list[Checkpoint]:
        """Checkpoint entries serving ``variant`` on ``dataset``: official, then shipped, then trainable."""
        order = {"official": 0, "shipped": 1, "train": 2}
        hits = [c.for_dataset(dataset) for c in self.checkpoints if c.variant == variant and dataset in c.datasets]
        return sorted(hits, key=lambda c: order[c.kind])

    def shipped_checkpoint(self, variant: str) -> Path | None:
        """refbench's own weights for ``variant`` shipped in the model's package (``<package>/weights/``)."""
        module = self.builder.split(":")[0] if isinstance(self.builder, str) else self.builder.__module__
        package = module.rsplit(".", 1)[0] if "." in module else module
        for c in self.checkpoints:
            if c.kind == "shipped" and c.variant == variant:
                path = Path(str(resources.files(package).joinpath("weights", c.file)))
                return path if path.is_file() else None
        return None

    def config_fields(self, variant: str | None) -> frozenset[str]:
        """Names of the config fields ``build(variant, **overrides)`` accepts (empty when not declared)."""
        import dataclasses

        if not self.configs:
            return frozenset()
        config = load_target(self.configs, "model configs").get(self.check_variant(variant))
        return frozenset(f.name for f in dataclasses.fields(config)) if dataclasses.is_dataclass(config) \
            else frozenset()

    def cost(self, variant: str | None) -> Cost | None:
        return self.costs.get(self.check_variant(variant))

    def build(self, variant: str | None = None, **overrides: Any) -> "RISModel":
        variant = self.check_variant(variant)
        fn = load_target(self.builder, "model builder") if isinstance(self.builder, str) else self.builder
        return fn(variant=variant, **overrides)


class RISModel(nn.Module):
    """Base class of refbench models.  Subclasses set the attributes and implement forward.

    Attributes:
        name, variant: registry name and variant.
        binarize_rule: official binarization (``argmax`` for 2-channel logits,
            ``sigmoid>0.5`` for 1-channel).
        input_size: side of the square input in pixels.
        text_encoder_kind: ``bert`` or ``clip`` (selects the tokenizer in the data pipeline).
        token_length: number of token ids per sentence.
        normalization: ``imagenet`` or ``clip`` image mean/std.
        text_encoder_prefix: state-dict prefix of the text encoder's parameters (used by
            recipes that train only some of its layers), or None.

    Inputs everywhere: ``images`` float (B, 3, S, S) normalized; ``input_ids`` int64 (B, L);
    ``attention_mask`` int64 (B, L), 1 on real tokens.
    """

    name: str = ""
    variant: str = ""
    binarize_rule: str = "argmax"
    input_size: int = 480
    text_encoder_kind: str = "bert"
    token_length: int = 20
    normalization: str = "imagenet"
    text_encoder_prefix: str | None = None

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        """Raw logits exactly as the official code returns them: (B, 2, S, S) or (B, 1, S, S)."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Bool masks (B, S, S) under the official binarization."""
        from refbench.core.binarize import binarize

        return binarize(self(images, input_ids, attention_mask).float(), self.binarize_rule)

    def load_checkpoint(self, path: str, strict: bool = True) -> list[str]:  # pragma: no cover - interface
        """Load an official or refbench checkpoint; returns notes (e.g. modules left freshly initialised)."""
        raise NotImplementedError

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:  # pragma: no cover - interface
        """Training loss terms by name, with the weighted sum under ``total``."""
        raise NotImplementedError(f"model {self.name!r} has no training loss")

    def training_order(self, types: list[str], epoch: int, seed: int) -> list[int] | None:
        """The sample order of a training epoch when the model's recipe prescribes one
        (e.g. DMMI's Ref-ZOM sampler); ``None`` = a seeded random permutation per epoch."""
        return None


def _as_model_info(obj: Any, target: str) -> ModelInfo:
    if callable(obj) and not isinstance(obj, ModelInfo):
        obj = obj()
    if not isinstance(obj, ModelInfo):
        raise RefbenchError(f"model entry {target!r} is not a refbench.models.ModelInfo")
    return obj


#: every model: refbench's baselines and third-party packages alike, through the entry-point group
MODELS: Registry[ModelInfo] = Registry("model", entry_point_group=ENTRY_POINT_GROUP, check=_as_model_info)


def registry() -> dict[str, str]:
    """``{name: "module:attr"}`` of every registered model."""
    return {n: (t if isinstance(t, str) else n) for n, t in MODELS.targets().items()}


def get_model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a registered model (did-you-mean error for an unknown name)."""
    return MODELS.get(name)


def list_models() -> list[ModelInfo]:
    """Every registered model's :class:`ModelInfo`, by name."""
    return [info for _, info in MODELS.items()]


def shipped_checkpoint(name: str, variant: str) -> Path | None:
    """refbench's own trained weights for (model, variant), if the model ships them."""
    return get_model_info(name).shipped_checkpoint(variant) if name in MODELS else None


def build_model(name: str, variant: str | None = None, **overrides: Any) -> RISModel:
    """Build a registered model (random init; call ``load_checkpoint`` for weights)."""
    return get_model_info(name).build(variant, **overrides)
