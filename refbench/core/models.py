"""Model registry and the interface every RIS model implements.

    model = refbench.models.build_model("lavt", variant="paper")
    model.load_checkpoint("lavt_refcoco.pth")          # official layout or refbench's own
    logits = model(images, input_ids, attention_mask)  # the official raw output
    masks = model.predict(images, input_ids, attention_mask)  # bool (B, H, W), official binarization

Models are found in two places: refbench's own baselines (table below) and the
``refbench.models`` entry-point group, through which another package can register a
model without touching refbench (the entry point names a :class:`ModelInfo`).
Building is lazy: nothing model-specific is imported until a model is asked for.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from refbench.core.errors import RefbenchError, suggest

ENTRY_POINT_GROUP = "refbench.models"


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
        checkpoints: official checkpoint file names -> what they were trained on.
        description: one line for ``refbench models``.
        variant_protocols: variants evaluated under another protocol than ``protocol``
            (e.g. MagNet ``all`` at 448: ``{"all": "lavt-448"}``).
    """

    name: str
    builder: "str | Callable[..., RISModel]"
    variants: tuple[str, ...]
    protocol: str
    binarize: str
    paper: str = ""
    checkpoints: dict[str, str] = field(default_factory=dict)
    description: str = ""
    variant_protocols: dict[str, str] = field(default_factory=dict)

    def protocol_for(self, variant: str | None, dataset_format: str | None = None) -> str:
        """The protocol the paper reports for this variant; on Ref-ZOM-style data ``refzom`` and
        on gRefCOCO-style data ``gres`` (the protocols of those benchmarks)."""
        if dataset_format == "refzom":
            return "refzom"
        if dataset_format == "grefcoco":
            return "gres"
        return self.variant_protocols.get(variant or self.variants[0], self.protocol)

    def build(self, variant: str | None = None, **overrides: Any) -> "RISModel":
        variant = variant or self.variants[0]
        if variant not in self.variants:
            raise suggest(variant, self.variants, f"variant of model {self.name!r}")
        fn = self.builder
        if isinstance(fn, str):
            module, attr = fn.split(":")
            fn = getattr(importlib.import_module(module), attr)
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


# Built-in reference implementations.  Each module exposes MODEL_INFO.
BUILTIN: dict[str, str] = {
    "lavt": "baselines.lavt:MODEL_INFO",
    "magnet": "baselines.magnet:MODEL_INFO",
    "dmmi": "baselines.dmmi:MODEL_INFO",
    "meres": "baselines.meres:MODEL_INFO",
    "jmceln": "baselines.jmceln:MODEL_INFO",
}


def _load_target(target: str) -> ModelInfo:
    module, attr = target.split(":")
    try:
        info = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise RefbenchError(f"model entry {target!r} cannot be loaded ({e})") from None
    if callable(info) and not isinstance(info, ModelInfo):
        info = info()
    if not isinstance(info, ModelInfo):
        raise RefbenchError(f"model entry {target!r} is not a refbench.models.ModelInfo")
    return info


def registry() -> dict[str, str]:
    """``{name: "module:attr"}`` of every known model (built-ins + entry points)."""
    names = dict(BUILTIN)
    try:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            names.setdefault(ep.name, ep.value)
    except Exception:  # pragma: no cover - broken metadata must not break the built-ins
        pass
    return names


def get_model_info(name: str) -> ModelInfo:
    names = registry()
    if name not in names:
        raise suggest(name, names, "model")
    return _load_target(names[name])


def list_models() -> list[ModelInfo]:
    return [get_model_info(n) for n in sorted(registry())]


def shipped_checkpoint(name: str, variant: str) -> "Path | None":
    """refbench's own trained weights for (model, variant) shipped in the package, if any:
    ``baselines/<name>/weights/<name>_<variant>_synth.pt`` (the tiny variants, trained on the
    synthetic benchmark by ``refbench train``), else None."""
    try:
        module = importlib.import_module(registry().get(name, "").split(":")[0] or name)
    except ImportError:
        return None
    path = Path(module.__file__).parent / "weights" / f"{name}_{variant}_synth.pt"
    return path if path.is_file() else None


def build_model(name: str, variant: str | None = None, **overrides: Any) -> RISModel:
    """Build a registered model (random init; call ``load_checkpoint`` for weights)."""
    return get_model_info(name).build(variant, **overrides)
