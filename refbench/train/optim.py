"""Optimizer parameter groups and the polynomial learning-rate schedule."""
from __future__ import annotations

import re

import torch
from torch import nn

from refbench.train.recipes import TrainRecipe

_TEXT_LAYER = re.compile(r"(?:^|\.)(?:encoder\.)?layer\.(\d+)\.")
_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def is_norm_layer(module: nn.Module) -> bool:
    """A normalization layer: torch's BatchNorm/InstanceNorm/LayerNorm/GroupNorm (and subclasses, e.g.
    CLIP's LayerNorm) or any module whose class is named ``...Norm``/``...NormNd`` (SwitchableNorm2d,
    channels-first LayerNorms)."""
    name = type(module).__name__
    return isinstance(module, _NORM_TYPES) or name.endswith(("Norm", "Norm1d", "Norm2d", "Norm3d"))


def norm_layer_parameters(model: nn.Module) -> set[int]:
    """ids of the parameters owned directly by normalization layers (:func:`is_norm_layer`)."""
    return {id(p) for m in model.modules() if is_norm_layer(m) for p in m.parameters(recurse=False)}


def parameter_groups(model: nn.Module, recipe: TrainRecipe) -> tuple[list[dict], dict]:
    """AdamW groups (decay / no decay) and a summary of what is trained.

    Parameters whose name contains one of ``recipe.no_decay`` get weight decay 0, and so do the
    parameters of every normalization layer when ``recipe.no_decay_norm_layers`` is set.  When
    ``recipe.text_layers_trained`` is N, only the first N transformer layers of the text
    encoder (params under ``model.text_encoder_prefix``) are trained; its embeddings and the
    other layers are frozen (requires_grad False), as LAVT/DMMI's train.py do.
    """
    prefix = getattr(model, "text_encoder_prefix", None)
    decay, no_decay, frozen = [], [], []
    norm_ids = norm_layer_parameters(model) if recipe.no_decay_norm_layers else set()
    for name, p in model.named_parameters():
        if prefix and recipe.text_layers_trained is not None and name.startswith(prefix):
            m = _TEXT_LAYER.search(name[len(prefix):])
            if m is None or int(m.group(1)) >= recipe.text_layers_trained:
                p.requires_grad_(False)
                frozen.append(name)
                continue
        if not p.requires_grad:
            frozen.append(name)
            continue
        (no_decay if id(p) in norm_ids or any(k in name for k in recipe.no_decay) else decay).append(p)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    summary = {"decay_tensors": len(decay), "no_decay_tensors": len(no_decay), "frozen_tensors": len(frozen),
               "trained_parameters": sum(p.numel() for g in groups for p in g["params"])}
    return [g for g in groups if g["params"]], summary


def build_optimizer(model: nn.Module, recipe: TrainRecipe) -> tuple[torch.optim.Optimizer, dict]:
    groups, summary = parameter_groups(model, recipe)
    return torch.optim.AdamW(groups, lr=recipe.lr, betas=recipe.betas, eps=recipe.eps), summary


def poly_lambda(total_steps: int, power: float):
    """LambdaLR factor: (1 - step / total_steps) ** power, clamped at 0 (per optimizer step)."""
    def f(step: int) -> float:
        return max(0.0, 1.0 - step / max(1, total_steps)) ** power
    return f
