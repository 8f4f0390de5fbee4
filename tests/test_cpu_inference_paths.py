"""The CPU inference paths of issue #22 compute the same functions as the modules they replace:
deformable sampling (embedding-bag gather vs grid_sample), DMMI's decoder layer (SDPA vs
nn.TransformerDecoderLayer), Swin's bf16 window attention, BERT in float32 under autocast, and
MagNet's training-only modules initialised on first use."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.msdeform_attn import MSDeformAttn, ms_deform_attn_sample, reference_points


def grid_sample_reference(value, shapes, loc, weights):
    """The official pure-PyTorch formulation (per-level grid_sample, stacked, weighted sum)."""
    b, _, m, d = value.shape
    _, q, _, n_levels, n_points, _ = loc.shape
    values = value.split([h * w for h, w in shapes], dim=1)
    out = []
    for lvl, (h, w) in enumerate(shapes):
        v = values[lvl].flatten(2).transpose(1, 2).reshape(b * m, d, h, w)
        g = (2 * loc[:, :, :, lvl] - 1).transpose(1, 2).flatten(0, 1)
        out.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    stacked = torch.stack(out, dim=-2).flatten(-2)
    att = weights.transpose(1, 2).reshape(b * m, 1, q, n_levels * n_points)
    return (stacked * att).sum(-1).view(b, m * d, q).transpose(1, 2)


def _deform_inputs(seed=0, b=2, q=7, m=2, d=3, points=3):
    g = torch.Generator().manual_seed(seed)
    shapes = [(3, 5), (2, 2), (1, 1)]
    s = sum(h * w for h, w in shapes)
    value = torch.randn(b, s, m, d, generator=g)
    loc = torch.rand(b, q, m, len(shapes), points, 2, generator=g) * 1.6 - 0.3  # some outside [0, 1]
    loc[0, 0, 0, 0, 0] = torch.tensor([7.0, -4.0])                               # far outside
    w = torch.rand(b, q, m, len(shapes), points, generator=g).softmax(-1)
    return value, shapes, loc, w


def test_deformable_sampling_equals_grid_sample_values_and_gradients():
    value, shapes, loc, w = _deform_inputs()
    args = [t.clone().requires_grad_() for t in (value, loc, w)]
    ref_args = [t.clone().requires_grad_() for t in (value, loc, w)]
    out = ms_deform_attn_sample(args[0], shapes, args[1], args[2])
    ref = grid_sample_reference(ref_args[0], shapes, ref_args[1], ref_args[2])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ref)
    (out * g).sum().backward()
    (ref * g).sum().backward()
    for a, r in zip(args, ref_args):
        torch.testing.assert_close(a.grad, r.grad, atol=1e-4, rtol=1e-4)
    with torch.no_grad():  # the in-place inference path
        torch.testing.assert_close(ms_deform_attn_sample(value, shapes, loc, w), ref.detach(), atol=1e-5, rtol=1e-5)


def test_msdeform_attn_workspace_reuse_and_bf16_sampling_in_float32():
    torch.manual_seed(0)
    shapes = [(6, 4), (3, 2)]
    attn = MSDeformAttn(d_model=16, n_levels=2, n_heads=4, n_points=3).eval()
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.3)
    ref_pts = reference_points(shapes)
    x = torch.randn(2, 30, 16)
    with torch.no_grad():
        plain = attn(x, ref_pts, x, shapes)
        ws: dict = {}
        first = attn(x, ref_pts, x, shapes, workspace=ws)
        kept = {k: v.data_ptr() for k, v in ws.items()}
        second = attn(x * 2, ref_pts, x * 2, shapes, workspace=ws)
        assert kept and {k: v.data_ptr() for k, v in ws.items()} == kept  # reused, not reallocated
        torch.testing.assert_close(first, plain, rtol=0, atol=0)
        torch.testing.assert_close(second, attn(x * 2, ref_pts, x * 2, shapes), rtol=0, atol=0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = attn(x, ref_pts, x, shapes)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), plain, atol=0.1, rtol=0.05)


def test_dmmi_decoder_layer_equals_torch_transformer_decoder_layer():
    from baselines.dmmi.decoder import TransformerFusion, decoder_layer

    torch.manual_seed(0)
    fusion = TransformerFusion(32, 4, 64, 0.1).eval()
    layer = fusion.transformer_model.layers[0]
    vis, words = torch.randn(2, 32, 5, 6), torch.randn(2, 32, 7)
    with torch.no_grad():
        tokens = vis.flatten(2).transpose(1, 2)
        ref = layer(tokens, words.transpose(1, 2))                  # torch's own (fast path in eval)
        ours = decoder_layer(layer, tokens, words.transpose(1, 2))
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
        out = fusion(vis, words)
    assert out.shape == vis.shape
    torch.testing.assert_close(out, ref.transpose(1, 2).reshape(vis.shape), atol=1e-5, rtol=1e-5)
    fusion.train()  # training: dropout active, gradients flow to every parameter of the layer
    fusion(vis, words).square().mean().backward()
    assert all(p.grad is not None for p in layer.parameters())


def test_swin_bf16_window_attention_is_close_to_float32_and_training_uses_sdpa():
    from baselines.common.swin import WindowAttention, shifted_window_mask

    torch.manual_seed(0)
    attn = WindowAttention(64, 4, 4).eval()
    with torch.no_grad():
        attn.relative_position_bias_table.normal_(0, 0.5)
    mask = shifted_window_mask(8, 8, 4, 2, torch.device("cpu"))    # (4 windows, 16, 16)
    x = torch.randn(2 * 4, 16, 64)
    with torch.no_grad():
        ref = attn(x, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = attn(x, mask)
            low_nomask = attn(x, None)
        ref_nomask = attn(x, None)
    torch.testing.assert_close(low.float(), ref, atol=0.05, rtol=0.05)
    torch.testing.assert_close(low_nomask.float(), ref_nomask, atol=0.05, rtol=0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):            # with autograd: the SDPA path
        attn.train()(x.requires_grad_(), mask).float().sum().backward()
    assert x.grad is not None


def test_bert_runs_in_float32_under_autocast():
    from baselines.common.bert import BertEncoderConfig, BertTextEncoder

    torch.manual_seed(0)
    bert = BertTextEncoder(BertEncoderConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                                             vocab_size=100)).eval()
    ids = torch.randint(1, 100, (2, 6))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        ref = bert(ids, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = bert(ids, mask)
    assert low.dtype == torch.float32 and torch.equal(low, ref)


def test_magnet_training_modules_are_initialised_on_first_use():
    from baselines.magnet.model import MaskGrounding, build

    torch.manual_seed(0)
    model = build("tiny")
    state = model._training_rng.clone()
    params = dict(model.mask_grounding.named_parameters())
    optim = torch.optim.SGD(model.parameters(), lr=0.1)  # built before the values exist
    with torch.random.fork_rng():
        torch.set_rng_state(state)
        eager = MaskGrounding(model.config)
    after_build = torch.get_rng_state()
    got = model.mask_grounding.state_dict()                  # first use: filled in place
    assert all(torch.equal(got[k], v) for k, v in eager.state_dict().items())
    assert all(params[k] is p for k, p in model.mask_grounding.named_parameters())
    assert torch.equal(torch.get_rng_state(), after_build)    # the replay leaves the generator alone
    assert {id(p) for g in optim.param_groups for p in g["params"]} >= {id(p) for p in params.values()}


def test_magnet_encoder_layer_token_blocks_equal_the_whole_map_path():
    """The inference path (values once, then token blocks of one image) computes what the
    autograd path computes, whatever the block size (GEMMs of different row counts may round
    differently in the last bit; on the paper-size encoder the blocks were bitwise equal)."""
    from baselines.magnet.head import DeformableEncoderLayer

    torch.manual_seed(0)
    shapes = [(3, 3), (6, 5), (12, 10)]
    s = sum(h * w for h, w in shapes)
    layer = DeformableEncoderLayer(16, 32, len(shapes), 4, 2).eval()
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.3)
    src, pos, ref = torch.randn(2, s, 16), torch.randn(2, s, 16), reference_points(shapes)
    whole = layer(src, pos, ref, shapes)  # grad enabled: the whole-map path
    outs = []
    try:
        for block in (7, 64, 10_000):
            layer.inference_block = block
            with torch.no_grad():
                outs.append(layer(src, pos, ref, shapes, workspace={}))
    finally:
        del layer.inference_block
    torch.testing.assert_close(outs[0], whole.detach(), atol=1e-5, rtol=1e-5)
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # reference points given per image read the right image's rows
        per_image = layer(src, pos, ref.expand(2, -1, -1, -1), shapes, workspace={})
    assert torch.equal(per_image, outs[-1])
