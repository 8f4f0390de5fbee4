"""The pretrained parts the paper recipes start from, and readers for the files as their authors release them.

Every paper recipe initialises its encoders from public weights (LAVT §4.1, MagNet supplementary §3,
DMMI §4.1, MERES §4.1 / App. E, JMCELN §4); refbench downloads nothing, so the user passes the
files as build arguments (``--model-arg swin_path=FILE`` …) and ``refbench train --variant paper``
refuses to start without them (refbench.train.pretrained).  The parts:

==========  ==============  ===================================================================
part        build argument  file, as released
==========  ==============  ===================================================================
Swin-B 22k  ``swin_path``   ``swin_base_patch4_window12_384_22k.pth`` (Microsoft): a
                            ``torch.save``d ``{'model': state_dict}`` with the classifier
                            ``head.*``, the final ``norm.*`` and cached ``attn_mask`` buffers
BERT-base   ``bert_path``   a Hugging Face folder of ``bert-base-uncased``: ``config.json`` and
                            ``model.safetensors`` or ``pytorch_model.bin`` (``bert.``-prefixed
                            keys with the MLM/NSP heads; the old release names LayerNorm
                            parameters ``gamma``/``beta``)
CLIP RN101  ``clip_path``   OpenAI's ``RN101.pt``: a TorchScript archive of the whole CLIP
                            (read weights-only; a ``torch.save``d state dict works too)
ResNet-101  ``resnet_path`` torchvision's ImageNet weights (``resnet101-63fe2227.pth``, a bare
                            state dict; DMMI's ResNet variant)
==========  ==============  ===================================================================

Loading into a model is done by the encoders' own loaders (``swin.load_pretrained_swin``,
``bert.BertTextEncoder(path=...)``, ``clip.load_clip_state_dict``, ``resnet.load_pretrained_resnet``);
this module adds the readers that check a file is what the part needs *without building a model*
(``read_swin_pth``, ``read_bert_folder``, ``read_clip_pt``, ``read_resnet_pth``), each returning the
state dict under the encoder's key names or raising one RefbenchError line.
"""
from __future__ import annotations

import json
import os
from typing import Callable

import torch

from refbench.core.errors import RefbenchError
from refbench.core.models import PretrainedPart

SWIN_SOURCE = ("github.com/microsoft/Swin-Transformer (the LAVT README links "
               "github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window12_384_22k.pth)")

SWIN_B_22K = PretrainedPart(
    name="swin", model_arg="swin_path",
    file_format="Swin-B ImageNet-22k, window 12, 384 (swin_base_patch4_window12_384_22k.pth as Microsoft released "
                "it: {'model': state_dict})",
    source=SWIN_SOURCE)
BERT_BASE_UNCASED = PretrainedPart(
    name="bert", model_arg="bert_path",
    file_format="a Hugging Face folder of bert-base-uncased (config.json + model.safetensors or pytorch_model.bin)",
    source="huggingface.co/bert-base-uncased (e.g. `huggingface-cli download bert-base-uncased --local-dir DIR`)")
CLIP_RN101 = PretrainedPart(
    name="clip", model_arg="clip_path",
    file_format="OpenAI CLIP RN101.pt as released (a TorchScript archive; a CLIP RN101 state dict also works)",
    source="github.com/openai/CLIP (the RN101 entry of clip/clip.py's model list)")
RESNET101_IMAGENET = PretrainedPart(
    name="resnet", model_arg="resnet_path",
    file_format="torchvision ResNet-101 ImageNet weights (resnet101-63fe2227.pth, a bare state dict)",
    source="torchvision (ResNet101_Weights.IMAGENET1K_V1: download.pytorch.org/models/resnet101-63fe2227.pth)")

PARTS: dict[str, PretrainedPart] = {p.model_arg: p for p in (SWIN_B_22K, BERT_BASE_UNCASED, CLIP_RN101,
                                                             RESNET101_IMAGENET)}


def _unwrap(obj, path: str, what: str) -> dict:
    sd = obj
    if isinstance(obj, dict):
        for name in ("model", "state_dict"):
            if isinstance(obj.get(name), dict):
                sd = obj[name]
                break
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise RefbenchError(f"{path}: no state dict of tensors found; expected {what}")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}


def read_swin_pth(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A Swin classification checkpoint as Microsoft released it -> the backbone's tensors (official key
    names; ``head.*``, the final ``norm.*`` and ``attn_mask`` buffers dropped).  One-line error when the
    file is not a Swin checkpoint."""
    from refbench.core.checkpoint import read_checkpoint

    path = os.fspath(path)
    sd = _unwrap(read_checkpoint(path), path, SWIN_B_22K.file_format)
    keep = {k: v for k, v in sd.items()
            if not (k.startswith(("head.", "norm.")) or k.endswith("attn_mask"))}
    if not any(".blocks." in k and k.startswith("layers.") for k in keep) or "patch_embed.proj.weight" not in keep:
        raise RefbenchError(f"{path}: no Swin keys (patch_embed.proj.weight, layers.N.blocks.M.*); expected "
                            f"{SWIN_B_22K.file_format}")
    return keep


def _bert_key(key: str) -> str | None:
    """A released BERT checkpoint key -> BertModel's name, or None for the pretraining heads / pooler."""
    if key.startswith("bert."):
        key = key[len("bert."):]
    if key.startswith(("cls.", "pooler.")) or key.endswith("position_ids"):
        return None
    return key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")


def read_bert_folder(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A Hugging Face BERT folder (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``) ->
    BertModel's embeddings and encoder tensors.  One-line error when the folder, its config or its
    weights are missing, or the weights lack any embedding/encoder tensor the config implies."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise RefbenchError(f"bert_path {path!r} is not a folder; expected {BERT_BASE_UNCASED.file_format}")
    try:
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
        layers = int(config["num_hidden_layers"])
    except (OSError, ValueError, KeyError, TypeError):
        raise RefbenchError(f"bert_path {path!r}: no readable config.json with num_hidden_layers; expected "
                            f"{BERT_BASE_UNCASED.file_format}") from None
    st, binary = os.path.join(path, "model.safetensors"), os.path.join(path, "pytorch_model.bin")
    if os.path.isfile(st):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            raw = load_file(st)
        except (SafetensorError, OSError) as e:
            raise RefbenchError(f"bert_path {path!r}: model.safetensors cannot be read ({e})") from None
    elif os.path.isfile(binary):
        from refbench.core.checkpoint import read_checkpoint

        raw = _unwrap(read_checkpoint(binary), binary, BERT_BASE_UNCASED.file_format)
    else:
        raise RefbenchError(f"bert_path {path!r} has no model.safetensors or pytorch_model.bin; expected "
                            f"{BERT_BASE_UNCASED.file_format}")
    out = {}
    for k, v in raw.items():
        name = _bert_key(k)
        if name is not None:
            out[name] = v
    needed = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
              "embeddings.LayerNorm.weight"] + [f"encoder.layer.{i}.output.LayerNorm.weight" for i in range(layers)]
    missing = [k for k in needed if k not in out]
    if missing:
        raise RefbenchError(f"bert_path {path!r}: the weights lack {len(missing)} BERT tensor(s) the config implies, "
                            f"e.g. {missing[0]}; expected {BERT_BASE_UNCASED.file_format}")
    return out


def read_clip_pt(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """OpenAI's ``RN101.pt`` (TorchScript archive, read weights-only) or a CLIP state dict -> OpenAI-named
    tensors (size entries dropped); one-line error when it is not a CLIP checkpoint."""
    from baselines.common.clip import read_clip_state_dict

    path = os.fspath(path)
    state, _ = read_clip_state_dict(path)
    if "visual.conv1.weight" not in state or "token_embedding.weight" not in state:
        raise RefbenchError(f"{path}: no CLIP keys (visual.conv1.weight, token_embedding.weight); expected "
                            f"{CLIP_RN101.file_format}")
    return state


def read_resnet_pth(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """torchvision ResNet ImageNet weights -> their tensors; one-line error when it is not a ResNet."""
    from refbench.core.checkpoint import read_checkpoint

    path = os.fspath(path)
    sd = _unwrap(read_checkpoint(path), path, RESNET101_IMAGENET.file_format)
    if "conv1.weight" not in sd or not any(k.startswith("layer4.") for k in sd):
        raise RefbenchError(f"{path}: no torchvision ResNet keys (conv1.weight, layer4.*); expected "
                            f"{RESNET101_IMAGENET.file_format}")
    return sd


READERS: dict[str, Callable[[str], dict[str, torch.Tensor]]] = {
    "swin_path": read_swin_pth, "bert_path": read_bert_folder, "clip_path": read_clip_pt,
    "resnet_path": read_resnet_pth}
