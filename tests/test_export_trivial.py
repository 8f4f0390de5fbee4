"""Compact shipped checkpoints (float16, unused token rows zeroed, gzip) and the trivial predictors."""
import gzip

import pytest
import torch

from refbench.core.errors import RefbenchError


def test_compact_checkpoint_roundtrip(tmp_path):
    from refbench.core.checkpoint import save_checkpoint
    from refbench.core.models import build_model
    from refbench.train.export import export_compact

    torch.manual_seed(0)
    model = build_model("lavt", "tiny")
    save_checkpoint(model, tmp_path / "full.pt")
    used = [0, 101, 102, 1996, 2417]
    header = export_compact(tmp_path / "full.pt", tmp_path / "small.pt", used, trained_on="test")
    assert header["compact"]["zeroed_unused_token_rows"] == ["text_encoder.embeddings.word_embeddings.weight"]
    assert (tmp_path / "small.pt").stat().st_size < 0.4 * (tmp_path / "full.pt").stat().st_size
    again = build_model("lavt", "tiny")
    again.load_checkpoint(str(tmp_path / "small.pt"))
    sd, ref = again.state_dict(), model.state_dict()
    key = "text_encoder.embeddings.word_embeddings.weight"
    assert torch.equal(sd[key][used], ref[key][used].half().float())
    assert sd[key][5].abs().sum() == 0
    other = [k for k in ref if k != key and torch.is_floating_point(ref[k])]
    assert all(torch.equal(sd[k], ref[k].half().float()) for k in other)

    # a truncated gzip file is one clear error
    data = (tmp_path / "small.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(RefbenchError, match="cannot be read"):
        build_model("lavt", "tiny").load_checkpoint(str(tmp_path / "cut.pt"))
    assert gzip.decompress(data)  # the shipped format is plain gzip around torch.save


def test_compact_keeps_running_stats_and_out_of_range_tensors_fp32():
    from refbench.train.export import compact_state

    state = {"bn.running_var": torch.tensor([1e12, 0.5]), "bn.running_mean": torch.tensor([0.1]),
             "big.weight": torch.tensor([7e4, 1.0]), "small.weight": torch.tensor([0.1, 1.0])}
    out, _ = compact_state(state, [0])
    assert {k: v.dtype for k, v in out.items()} == {"bn.running_var": torch.float32, "bn.running_mean": torch.float32,
                                                    "big.weight": torch.float32, "small.weight": torch.float16}
    assert all(torch.isfinite(v).all() for v in out.values())


def test_trivial_predictors(synth_tiny):
    from refbench.data import RISDataset, open_split
    from refbench.eval.trivial import trivial_metrics

    split = open_split("synth/val", synth_tiny)
    m = trivial_metrics(split, "lavt")
    assert m["empty"]["mIoU"] == 0.0 and m["empty"]["oIoU"] == 0.0
    ds = RISDataset(split, "lavt", skip_missing_images=True)
    fractions = [ds.gt(i).mean() for i in range(len(ds))]
    assert m["full"]["mIoU"] == pytest.approx(100 * sum(fractions) / len(fractions))
    assert 0 < m["largest"]["mIoU"] < 100 and m["largest"]["mIoU"] > m["full"]["mIoU"]
