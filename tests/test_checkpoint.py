"""Checkpoint reading (weights_only) and strict loading of official and refbench layouts."""
from __future__ import annotations

import argparse
import os

import pytest
import torch
from torch import nn

from refbench.core.checkpoint import (
    CheckpointLayout, describe_keys, load_model_checkpoint, read_checkpoint, save_checkpoint,
)
from refbench.core.errors import RefbenchError

LAYOUT = CheckpointLayout(dicts={"model": "", "bert_model": "text_encoder."}, ignore_suffixes=("position_ids",))


class Toy(nn.Module):
    """Mimics an official model: backbone with a computed int buffer, BN decoder, text encoder."""

    name, variant = "toy", "small"

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(3, width), nn.LayerNorm(width))
        self.backbone.register_buffer("relative_position_index", torch.arange(4).view(2, 2), persistent=True)
        self.classifier = nn.Sequential(nn.Conv2d(width, 2, 1), nn.BatchNorm2d(2))
        self.text_encoder = nn.Sequential(nn.Embedding(10, 5), nn.Linear(5, 5))

    def official(self, ddp: bool = False) -> dict:
        sd = {k: v.clone() for k, v in self.state_dict().items()}
        model = {k: v for k, v in sd.items() if not k.startswith("text_encoder.")}
        bert = {k[len("text_encoder."):]: v for k, v in sd.items() if k.startswith("text_encoder.")}
        bert["0.position_ids"] = torch.arange(5)[None]  # ignored like HF's embeddings.position_ids
        if ddp:
            model = {"module." + k: v for k, v in model.items()}
        return {"model": model, "bert_model": bert, "optimizer": {"state": {}}, "epoch": 3,
                "args": argparse.Namespace(lr=5e-5, swin_type="base")}


def _randomize(m: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return m


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("ddp", [False, True])
def test_official_layout_file_loads_strictly(tmp_path, ddp):
    src = _randomize(Toy(), 1)
    torch.save(src.official(ddp), tmp_path / "official.pth")  # incl. argparse.Namespace, like train.py
    dst = Toy()
    notes = load_model_checkpoint(dst, tmp_path / "official.pth", LAYOUT)
    assert _same(src, dst)
    assert any("'model', 'bert_model'" in n for n in notes)


def test_missing_computed_buffers_are_kept_with_a_note():
    src = _randomize(Toy(), 2)
    ck = src.official()
    del ck["model"]["backbone.relative_position_index"], ck["model"]["classifier.1.num_batches_tracked"]
    dst = Toy()
    notes = load_model_checkpoint(dst, ck, LAYOUT)
    assert _same(src, dst)
    assert any("kept 2 self-computed integer buffers" in n for n in notes)


def test_mismatch_error_is_one_line_grouped_with_shapes():
    ck = Toy().official()
    del ck["model"]["classifier.0.weight"]
    ck["model"]["classifier.9.weight"] = torch.zeros(7, 7)
    ck["model"]["backbone.0.weight"] = torch.zeros(9, 3)
    with pytest.raises(RefbenchError) as err:
        load_model_checkpoint(Toy(), ck, LAYOUT)
    msg = str(err.value)
    assert "\n" not in msg
    assert "missing 1 [classifier.* (1, e.g. classifier.0.weight (2, 4, 1, 1))]" in msg
    assert "unexpected 1 [classifier.* (1, e.g. classifier.9.weight (7, 7))]" in msg
    assert "backbone.0.weight checkpoint (9, 3) vs model (4, 3)" in msg
    assert "pass strict=False" in msg


def test_non_strict_loads_matching_keys_and_reports_the_rest():
    src = _randomize(Toy(), 3)
    ck = src.official()
    del ck["bert_model"]["1.bias"]
    dst = Toy()
    notes = load_model_checkpoint(dst, ck, LAYOUT, strict=False)
    assert torch.equal(dst.backbone[0].weight, src.backbone[0].weight)
    assert not torch.equal(dst.text_encoder[1].bias, src.text_encoder[1].bias)
    assert any("missing 1 [text_encoder.*" in n and "strict=False" in n for n in notes)


def test_another_models_checkpoint_is_named_as_such(tmp_path):
    magnet_like = {"model": {"image_model.patch_embed.proj.weight": torch.zeros(2),
                             "language_model.embeddings.word_embeddings.weight": torch.zeros(2),
                             "lang_proj.weight": torch.zeros(2)}}
    torch.save(magnet_like, tmp_path / "magnet.pth")
    with pytest.raises(RefbenchError, match=r"another model \(its top-level prefixes: image_model, lang_proj, "
                                            r"language_model; expected: backbone, classifier, text_encoder\)"):
        load_model_checkpoint(Toy(), tmp_path / "magnet.pth", LAYOUT)


def test_truncated_file(tmp_path):
    torch.save(Toy().official(), tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(RefbenchError, match="cannot be read: it is truncated or corrupt"):
        read_checkpoint(tmp_path / "cut.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(RefbenchError, match="cannot be read"):
        read_checkpoint(tmp_path / "text.pth")
    with pytest.raises(RefbenchError, match="does not exist"):
        read_checkpoint(tmp_path / "absent.pth")


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_with_code_is_refused(tmp_path):
    torch.save({"model": {"w": torch.zeros(1)}, "extra": _Payload()}, tmp_path / "evil.pth")
    with pytest.raises(RefbenchError, match=r"contains a reference to (posix|os|nt)\.system; refusing to unpickle"):
        read_checkpoint(tmp_path / "evil.pth")


def test_refbench_layout_roundtrip_and_identity_checks(tmp_path):
    src = _randomize(Toy(), 4)
    save_checkpoint(src, tmp_path / "ours.pth", epoch=7)
    assert read_checkpoint(tmp_path / "ours.pth")["refbench"]["epoch"] == 7
    dst = Toy()
    notes = load_model_checkpoint(dst, tmp_path / "ours.pth", LAYOUT)
    assert _same(src, dst) and "refbench checkpoint" in notes[0]

    other = Toy()
    other.name = "magnet"
    save_checkpoint(other, tmp_path / "magnet.pth")
    with pytest.raises(RefbenchError, match="refbench checkpoint of model 'magnet'"):
        load_model_checkpoint(Toy(), tmp_path / "magnet.pth", LAYOUT)
    tiny = Toy()
    tiny.variant = "tiny"
    with pytest.raises(RefbenchError, match="build it with variant='small'"):
        load_model_checkpoint(tiny, tmp_path / "ours.pth", LAYOUT)


def test_unknown_layouts():
    with pytest.raises(RefbenchError, match="top-level keys: 'weights', 'epoch'"):
        load_model_checkpoint(Toy(), {"weights": {"a": 1}, "epoch": 1}, LAYOUT)
    with pytest.raises(RefbenchError, match="holds a list"):
        load_model_checkpoint(Toy(), [1, 2], LAYOUT)  # type: ignore[arg-type]
    src = _randomize(Toy(), 5)
    dst = Toy()
    assert load_model_checkpoint(dst, {"state_dict": src.state_dict()}, LAYOUT) == ["state dict under 'state_dict'"]
    assert _same(src, dst)


def test_describe_keys_groups_layers():
    tensors = {f"backbone.layers.{i}.fusion.W.0.weight": torch.zeros(i + 1) for i in range(4)}
    tensors.update({f"text_encoder.encoder.layer.{i}.output.dense.bias": torch.zeros(3) for i in range(12)})
    text = describe_keys(list(tensors), tensors, max_groups=1)
    assert text == "16 [backbone.layers.*.fusion.* (4, e.g. backbone.layers.0.fusion.W.0.weight (1)); +1 more groups]"
