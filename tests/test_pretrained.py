"""Paper recipes name their pretrained parts, training refuses to start without them (unless
``--from-scratch``), and the parts load from files generated in the layouts their authors release:
a Swin ``.pth`` as Microsoft ships it, a Hugging Face BERT folder (current safetensors and the
original ``bert.``/``gamma``/``beta`` checkpoint), OpenAI's TorchScript CLIP archive, torchvision's
ResNet weights."""
from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

from baselines.common.pretrained import (BERT_BASE_UNCASED, CLIP_RN101, RESNET101_IMAGENET, SWIN_B_22K, read_bert_folder,
                                         read_clip_pt, read_resnet_pth, read_swin_pth)
from refbench.core.errors import RefbenchError
from refbench.core.models import build_model, get_model_info
from refbench.train.pretrained import check_pretrained, require_pretrained

PAPER_PARTS = {("lavt", "paper"): {"swin_path", "bert_path"}, ("magnet", "paper"): {"swin_path", "bert_path"},
               ("magnet", "all"): {"swin_path", "bert_path"}, ("dmmi", "paper"): {"swin_path", "bert_path"},
               ("dmmi", "resnet101"): {"resnet_path", "bert_path"}, ("meres", "paper"): {"swin_path", "bert_path"},
               ("meres", "clip"): {"swin_path", "clip_path"}, ("jmceln", "paper"): {"clip_path"}}


# ------------------------------------------------------------------ the check

@pytest.mark.parametrize("model,variant", sorted(PAPER_PARTS))
def test_every_paper_recipe_names_its_pretrained_parts(model, variant):
    info = get_model_info(model)
    parts = info.pretrained[variant]
    assert {p.model_arg for p in parts} == PAPER_PARTS[(model, variant)]
    problems = check_pretrained(info, variant, {}, from_scratch=False)
    assert len(problems) == len(parts)
    for p, line in zip(parts, problems):
        assert line.startswith(p.model_arg) and p.source in line and p.file_format in line
    assert check_pretrained(info, variant, {}, from_scratch=True) == []
    assert "tiny" not in info.pretrained and check_pretrained(info, "tiny", {}, False) == []


def test_given_parts_must_exist(tmp_path):
    info = get_model_info("lavt")
    (tmp_path / "swin.pth").write_bytes(b"x")
    (tmp_path / "bert").mkdir()
    ok = {"swin_path": str(tmp_path / "swin.pth"), "bert_path": str(tmp_path / "bert")}
    assert check_pretrained(info, "paper", ok, False) == []
    bad = check_pretrained(info, "paper", {**ok, "bert_path": str(tmp_path / "nope")}, False)
    assert len(bad) == 1 and "bert_path=" in bad[0] and "does not exist" in bad[0]
    assert check_pretrained(info, "paper", {}, False, init_checkpoint=str(tmp_path / "swin.pth")) == []
    with pytest.raises(RefbenchError, match="--from-scratch"):
        require_pretrained(info, "paper", {}, False)


def test_train_without_pretrained_files_is_one_line_naming_them(tmp_path, run_cli):
    out = tmp_path / "run"
    code, stdout, err = run_cli("train", "--model", "magnet", "--variant", "paper", "--out", out)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in ("swin_path", "bert_path", "swin_base_patch4_window12_384_22k.pth", "bert-base-uncased",
                   "--from-scratch"):
        assert needle in lines[0]
    assert not out.exists()
    code, _, err = run_cli("train", "--model", "jmceln", "--out", out)      # --variant paper is the default
    assert code == 2 and "clip_path" in err and "RN101" in err and not out.exists()


def test_from_scratch_passes_the_gate(tmp_path, run_cli):
    # the gate is passed: the run then stops at the (deliberately) unknown dataset, not at the weights
    code, _, err = run_cli("train", "--model", "lavt", "--variant", "paper", "--from-scratch", "--dataset",
                           "nosuchset/train", "--out", tmp_path / "run")
    assert code == 2 and "nosuchset" in err and "pretrained" not in err


# ------------------------------------------------------------------ files in the official layouts

def _microsoft_swin(swin: nn.Module, path) -> dict:
    """A classification Swin checkpoint as Microsoft releases it, for ``swin``'s sizes: {'model': sd}
    with the classifier head, the final norm and cached attn_mask buffers, and no per-stage norm0..3."""
    sd = {k: torch.randn_like(v) if v.is_floating_point() else v.clone() for k, v in swin.state_dict().items()
          if not k.startswith(("norm0", "norm1", "norm2", "norm3"))}
    width = swin.config.stage_dims[-1]
    sd.update({"norm.weight": torch.randn(width), "norm.bias": torch.randn(width),
               "head.weight": torch.randn(11, width), "head.bias": torch.randn(11)})
    ws = swin.config.window_size
    for key in list(sd):
        if key.endswith("blocks.1.attn.qkv.weight"):
            sd[key.replace("attn.qkv.weight", "attn_mask")] = torch.zeros(4, ws * ws, ws * ws)
    torch.save({"model": sd}, path)
    return sd


def test_swin_pth_as_released_loads(tmp_path):
    model = build_model("lavt", "tiny")
    path = tmp_path / "swin_tiny_patch4_window7.pth"
    released = _microsoft_swin(model.backbone, path)
    backbone = read_swin_pth(path)
    assert not any(k.startswith(("head.", "norm.")) or k.endswith("attn_mask") for k in backbone)
    loaded = build_model("lavt", "tiny", swin_path=str(path))
    own = loaded.backbone.state_dict()
    blocks = [k for k in released if ".blocks." in k and not k.endswith("attn_mask")]
    assert blocks and all(torch.equal(own[k], released[k]) for k in blocks)
    assert torch.equal(own["patch_embed.proj.weight"], released["patch_embed.proj.weight"])
    torch.save({"model": {"conv1.weight": torch.zeros(1)}}, tmp_path / "notswin.pth")
    with pytest.raises(RefbenchError, match="no Swin keys"):
        read_swin_pth(tmp_path / "notswin.pth")


def _bert_config(model):
    from transformers import BertConfig

    t = model.config.text
    return BertConfig(vocab_size=t.vocab_size, hidden_size=t.hidden_size, num_hidden_layers=t.num_layers,
                      num_attention_heads=t.num_heads, intermediate_size=t.intermediate_size)


@pytest.mark.parametrize("layout", ["safetensors", "original-bin"])
def test_hugging_face_bert_folder_loads(layout, tmp_path):
    from transformers import BertForPreTraining

    model = build_model("lavt", "tiny")
    torch.manual_seed(0)
    hf = BertForPreTraining(_bert_config(model))
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p))  # every tensor, LayerNorms included, differs from any init
    folder = tmp_path / "bert-base-uncased"
    if layout == "safetensors":
        hf.save_pretrained(folder)                 # config.json + model.safetensors, bert.-prefixed keys
    else:                                          # the original release: pytorch_model.bin, gamma/beta names
        folder.mkdir()
        hf.config.save_pretrained(folder)
        legacy = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
                  for k, v in hf.state_dict().items()}
        torch.save(legacy, folder / "pytorch_model.bin")
    want = {k[len("bert."):]: v for k, v in hf.state_dict().items()
            if k.startswith("bert.") and not k.startswith("bert.pooler") and not k.endswith("position_ids")}
    got = read_bert_folder(folder)
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    loaded = build_model("lavt", "tiny", bert_path=str(folder))
    enc = loaded.text_encoder.state_dict()
    assert all(torch.equal(enc[k], want[k]) for k in want if k in enc) and "embeddings.LayerNorm.weight" in enc


def test_bert_folder_problems_are_one_line(tmp_path):
    with pytest.raises(RefbenchError, match="not a folder"):
        read_bert_folder(tmp_path / "nope")
    (tmp_path / "b").mkdir()
    with pytest.raises(RefbenchError, match="config.json"):
        read_bert_folder(tmp_path / "b")
    (tmp_path / "b" / "config.json").write_text(json.dumps({"num_hidden_layers": 2}))
    with pytest.raises(RefbenchError, match="no model.safetensors or pytorch_model.bin"):
        read_bert_folder(tmp_path / "b")
    torch.save({"bert.embeddings.word_embeddings.weight": torch.zeros(3, 2)}, tmp_path / "b" / "pytorch_model.bin")
    with pytest.raises(RefbenchError, match="lack"):
        read_bert_folder(tmp_path / "b")


class _OpenAIArchive(nn.Module):
    """What OpenAI's JIT archives hold: the whole CLIP at the root plus size buffers."""

    def __init__(self, visual: nn.Module, text: nn.Module, context: int) -> None:
        super().__init__()
        self.visual = visual
        for name, module in text.named_children():
            self.add_module(name, module)
        for name, param in text.named_parameters(recurse=False):
            self.register_parameter(name, param)
        for name, value in (("input_resolution", 160), ("context_length", context), ("vocab_size", 49408)):
            self.register_buffer(name, torch.tensor(value))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual(images)


def test_openai_clip_torchscript_archive_loads(tmp_path):
    model = build_model("jmceln", "tiny")
    torch.manual_seed(1)
    with torch.no_grad():
        for p in list(model.backbone.parameters()) + list(model.text_encoder.parameters()):
            p.add_(torch.randn_like(p))
    archive = _OpenAIArchive(model.backbone, model.text_encoder, context=77).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(archive, (torch.zeros(1, 3, 64, 64),), check_trace=False)
    path = tmp_path / "RN101.pt"
    traced.save(str(path))
    state = read_clip_pt(path)
    assert "input_resolution" not in state and "visual.conv1.weight" in state
    loaded = build_model("jmceln", "tiny", clip_path=str(path))
    for name, value in model.backbone.state_dict().items():
        assert torch.equal(loaded.backbone.state_dict()[name], value), name
    for name, value in model.text_encoder.state_dict().items():
        assert torch.equal(loaded.text_encoder.state_dict()[name], value), name
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(RefbenchError):
        read_clip_pt(tmp_path / "other.pt")


def test_torchvision_resnet_weights_read(tmp_path):
    from baselines.common.resnet import ResNet, ResNetConfig

    net = ResNet(ResNetConfig(layers=(1, 1, 1, 1), num_classes=10))
    torch.save(net.state_dict(), tmp_path / "resnet.pth")                 # torchvision: a bare state dict
    sd = read_resnet_pth(tmp_path / "resnet.pth")
    assert set(sd) == set(net.state_dict()) and "fc.weight" in sd
    torch.save({"model": {"patch_embed.proj.weight": torch.zeros(1)}}, tmp_path / "swin.pth")
    with pytest.raises(RefbenchError, match="ResNet"):
        read_resnet_pth(tmp_path / "swin.pth")


def test_parts_state_their_file_and_source():
    for part, needle in ((SWIN_B_22K, "swin_base_patch4_window12_384_22k.pth"), (BERT_BASE_UNCASED, "bert-base-uncased"),
                         (CLIP_RN101, "RN101.pt"), (RESNET101_IMAGENET, "resnet101")):
        assert needle in part.file_format and part.source and part.model_arg.endswith("_path")
