"""Swin backbone: official buffers and key names, window padding, shift masks, stage driving."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from baselines.common.layers import DropPath
from baselines.common.swin import (
    PatchEmbed, PatchMerging, SwinBlock, SwinConfig, SwinTransformer, load_pretrained_swin,
    relative_position_index, shifted_window_mask, window_partition, window_reverse,
)
from refbench.core.errors import RefbenchError

FIXTURES = Path(__file__).parent / "fixtures" / "parity"
SMALL = SwinConfig(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=4, drop_path_rate=0.0)


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.to(torch.int64).contiguous().numpy().astype("<i8").tobytes()).hexdigest()


def test_relative_position_index_matches_official_window12_buffer():
    spec = json.loads((FIXTURES / "lavt" / "spec.json").read_text())
    digests = {v for k, v in spec["int_buffer_digests"].items() if k.endswith("relative_position_index")}
    assert len(digests) == 1
    index = relative_position_index(12)
    assert index.shape == (144, 144) and index.dtype == torch.int64
    assert _digest(index) == digests.pop()


def test_relative_position_index_small_window_by_hand():
    # window 2: tokens (0,0),(0,1),(1,0),(1,1); entry = (dy+1)*3 + (dx+1)
    expected = torch.tensor([[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]])
    assert torch.equal(relative_position_index(2), expected)


def test_relative_position_index_is_persistent_buffer():
    swin = SwinTransformer(SMALL)
    keys = swin.state_dict().keys()
    assert "layers.0.blocks.0.attn.relative_position_index" in keys
    assert "layers.3.blocks.1.attn.relative_position_bias_table" in keys
    assert {f"norm{i}.weight" for i in range(4)} <= set(keys)
    assert "layers.3.downsample.norm.weight" not in keys and "layers.2.downsample.reduction.weight" in keys


def test_window_partition_roundtrip_and_order():
    x = torch.arange(2 * 8 * 12 * 3, dtype=torch.float32).view(2, 8, 12, 3)
    w = window_partition(x, 4)
    assert w.shape == (2 * 2 * 3, 16, 3)
    assert torch.equal(w[1].view(4, 4, 3), x[0, 0:4, 4:8])  # second window = top row, second column
    assert torch.equal(window_reverse(w, 4, 2, 8, 12), x)


def _reference_shift_mask(hp: int, wp: int, window: int, shift: int) -> torch.Tensor:
    """Region labels assigned with the slice rule of the Swin paper's reference, label by label."""
    img = torch.zeros(hp, wp)
    cnt = 0
    for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            img[hs, ws] = cnt
            cnt += 1
    win = window_partition(img[None, :, :, None], window).squeeze(-1)
    diff = win[:, None, :] - win[:, :, None]
    return torch.where(diff != 0, -100.0, 0.0)


@pytest.mark.parametrize("hp,wp,window", [(24, 24, 12), (36, 36, 12), (8, 12, 4), (7, 14, 7)])
def test_shifted_window_mask_regions(hp, wp, window):
    mask = shifted_window_mask(hp, wp, window, window // 2)
    assert mask.shape == ((hp // window) * (wp // window), window * window, window * window)
    assert torch.equal(mask, _reference_shift_mask(hp, wp, window, window // 2))
    assert torch.equal(mask, mask.transpose(1, 2))
    if hp // window > 1 and wp // window > 1:
        assert (mask[0] == 0).all()  # interior window: one region
    assert (mask[-1] == -100).any()  # bottom-right window mixes regions


@pytest.mark.parametrize("shift", [0, 2])
def test_block_pads_with_zeros_after_norm1(shift):
    """A 5x6 map (window 4 -> padded 8x8) equals an 8x8 map whose extra tokens normalise to 0.

    With norm1's bias at 0, a constant token's LayerNorm output is exactly 0, i.e. what zero
    padding after norm1 gives.  Padded tokens take part in attention (as keys/values), and the
    shift mask is computed on the padded size: both maps must give the same real-token output.
    """
    torch.manual_seed(0)
    block = SwinBlock(dim=8, num_heads=2, window=4, shift=shift).eval()
    with torch.no_grad():
        block.norm1.bias.zero_()
    h, w = 5, 6
    x = torch.randn(2, h, w, 8)
    big = torch.full((2, 8, 8, 8), 3.0)
    big[:, :h, :w] = x
    mask = shifted_window_mask(8, 8, 4, 2) if shift else None
    with torch.no_grad():
        small_out = block(x.reshape(2, h * w, 8), h, w, mask).view(2, h, w, 8)
        big_out = block(big.reshape(2, 64, 8), 8, 8, mask).view(2, 8, 8, 8)
    torch.testing.assert_close(small_out, big_out[:, :h, :w], atol=1e-5, rtol=1e-5)


def test_unshifted_block_is_window_local():
    torch.manual_seed(0)
    block = SwinBlock(dim=8, num_heads=2, window=4, shift=0).eval()
    x = torch.randn(1, 8, 8, 8)
    y = x.clone()
    y[0, 0, 0] += torch.randn(8)  # token in the top-left window (not a constant: LayerNorm removes those)
    with torch.no_grad():
        a = block(x.view(1, 64, 8), 8, 8, None).view(8, 8, 8)
        b = block(y.view(1, 64, 8), 8, 8, None).view(8, 8, 8)
    changed = (a - b).abs().amax(-1) > 1e-6
    assert changed[:4, :4].all() and not changed[4:].any() and not changed[:, 4:].any()


def test_shifted_block_mixes_across_window_borders():
    torch.manual_seed(0)
    block = SwinBlock(dim=8, num_heads=2, window=4, shift=2).eval()
    mask = shifted_window_mask(8, 8, 4, 2)
    x = torch.randn(1, 8, 8, 8)
    y = x.clone()
    y[0, 3, 3] += torch.randn(8)  # after the shift, (3,3) shares a window with (2..5, 2..5)
    with torch.no_grad():
        a = block(x.view(1, 64, 8), 8, 8, mask).view(8, 8, 8)
        b = block(y.view(1, 64, 8), 8, 8, mask).view(8, 8, 8)
    changed = (a - b).abs().amax(-1) > 1e-6
    assert changed[2:6, 2:6].all() and changed.sum() == 16


def test_patch_embed_and_merging_pad_odd_sizes():
    embed = PatchEmbed(4, 3, 8)
    tokens, h, w = embed(torch.randn(2, 3, 18, 21))
    assert (h, w) == (5, 6) and tokens.shape == (2, 30, 8)
    merge = PatchMerging(8)
    out, h2, w2 = merge(tokens, 5, 6)
    assert (h2, w2) == (3, 3) and out.shape == (2, 9, 16)


def test_backbone_shapes_strides_and_stage_driving():
    torch.manual_seed(0)
    swin = SwinTransformer(SMALL).eval()
    images = torch.randn(2, 3, 100, 100)  # maps 25, 13, 7, 4: every stage padded, odd merges
    with torch.no_grad():
        outs = swin(images)
        assert [tuple(o.shape) for o in outs] == [(2, 16, 25, 25), (2, 32, 13, 13), (2, 64, 7, 7), (2, 128, 4, 4)]
        x, h, w = swin.embed(images)
        manual = []
        for i, stage in enumerate(swin.layers):
            x = stage.forward_blocks(x, h, w)
            manual.append(swin.stage_output(i, x, h, w))
            x, h, w = stage.downsample_tokens(x, h, w)
    for a, b in zip(outs, manual):
        assert torch.equal(a, b)
    assert SwinConfig().strides == (4, 8, 16, 32) and SwinConfig().stage_dims == (128, 256, 512, 1024)


def test_stage_extras_are_registered_between_blocks_and_downsample():
    swin = SwinTransformer(SMALL, stage_extras=lambda i, dim: {"fusion": torch.nn.Linear(dim, dim)})
    keys = [k for k in swin.state_dict() if k.startswith("layers.1.")]
    assert keys.index("layers.1.fusion.weight") > keys.index("layers.1.blocks.1.mlp.fc2.bias")
    assert keys.index("layers.1.fusion.weight") < keys.index("layers.1.downsample.norm.weight")


def test_grad_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    swin = SwinTransformer(SMALL).train()
    for m in swin.modules():
        if isinstance(m, DropPath):
            m.p = 0.0
    images = torch.randn(1, 3, 32, 32)
    sum(o.sum() for o in swin(images)).backward()
    ref = swin.patch_embed.proj.weight.grad.clone()
    swin.zero_grad()
    swin.set_grad_checkpointing(True)
    sum(o.sum() for o in swin(images)).backward()
    torch.testing.assert_close(swin.patch_embed.proj.weight.grad, ref, atol=1e-5, rtol=1e-5)


def test_drop_path_train_and_eval():
    dp = DropPath(0.5)
    x = torch.ones(1000, 3)
    assert torch.equal(dp.eval()(x), x)
    y = dp.train()(x)
    assert set(torch.unique(y).tolist()) <= {0.0, 2.0} and 0.3 < (y[:, 0] > 0).float().mean() < 0.7
    assert (y == y[:, :1]).all()  # whole sample dropped, not single elements


def test_load_pretrained_swin_resizes_tables_and_rejects_other_files(tmp_path):
    torch.manual_seed(0)
    source = SwinTransformer(SwinConfig(**{**SMALL.__dict__, "window_size": 3}))
    sd = {k: v for k, v in source.state_dict().items() if not k.startswith("norm")}
    sd["norm.weight"], sd["head.weight"] = torch.ones(128), torch.zeros(10, 128)
    torch.save({"model": sd}, tmp_path / "swin_cls.pth")
    target = SwinTransformer(SMALL, stage_extras=lambda i, dim: {"fusion": torch.nn.Linear(dim, dim)})
    notes = load_pretrained_swin(target, str(tmp_path / "swin_cls.pth"))
    assert any("resized 8 relative-position tables" in n for n in notes)
    assert any("layers.0.fusion" in n and "norm0" in n for n in notes)
    assert torch.equal(target.layers[2].blocks[1].mlp.fc1.weight, source.layers[2].blocks[1].mlp.fc1.weight)
    assert target.layers[0].blocks[0].attn.relative_position_bias_table.shape == (49, 1)
    torch.save({"model": {"classifier.weight": torch.zeros(3)}}, tmp_path / "other.pth")
    with pytest.raises(RefbenchError, match="not a Swin classification checkpoint"):
        load_pretrained_swin(target, str(tmp_path / "other.pth"))
