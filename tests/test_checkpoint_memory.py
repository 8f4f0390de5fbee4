"""Checkpoint loading without transient copies: memory-mapped reads copied into the model piece by
piece, streamed gzip, dtype casts, shared storages, legacy files."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import refbench.core.checkpoint as ckpt
from refbench.core.checkpoint import CheckpointLayout, load_model_checkpoint, read_checkpoint

LAYOUT = CheckpointLayout(dicts={"model": ""})
REPO = Path(__file__).resolve().parents[1]


class Stack(nn.Module):
    name, variant = "stack", ""

    def __init__(self, width: int = 64, depth: int = 4) -> None:
        super().__init__()
        self.layers = nn.Sequential(*(nn.Linear(width, width) for _ in range(depth)))
        self.norm = nn.BatchNorm1d(width)


def _filled(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.state_dict().values():
            if torch.is_floating_point(t):
                t.copy_(torch.randn(t.shape, generator=g))
    return model


def _equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].float(), sb[k].float()) for k in sa)


@pytest.mark.parametrize("chunk", [1, 1 << 30])  # a piece per tensor (pages dropped between) / one piece
def test_file_loads_exactly_piece_by_piece(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(ckpt, "LOAD_CHUNK_BYTES", chunk)
    src = _filled(Stack(), 0)
    torch.save({"model": src.state_dict()}, tmp_path / "m.pth")
    dst = Stack()
    notes = load_model_checkpoint(dst, tmp_path / "m.pth", LAYOUT)
    assert _equal(src, dst) and "official layout" in notes[0]


def test_shared_storages_survive_dropped_pages(tmp_path, monkeypatch):
    """Two keys viewing one storage (tied weights): the second is copied after the first piece's
    pages were dropped, and must still read the file's values."""
    monkeypatch.setattr(ckpt, "LOAD_CHUNK_BYTES", 1)
    big = torch.randn(4096, 64)  # 1 MiB: whole pages to drop
    model = nn.Module()
    model.a, model.b = nn.Linear(64, 4096, bias=False), nn.Linear(64, 4096, bias=False)
    torch.save({"model": {"a.weight": big, "b.weight": big}}, tmp_path / "tied.pth")
    load_model_checkpoint(model, tmp_path / "tied.pth", LAYOUT)
    assert torch.equal(model.a.weight, big) and torch.equal(model.b.weight, big)


def test_in_memory_tensors_are_never_released(monkeypatch):
    """A dict passed in memory is copied, not page-dropped (dropping anonymous pages would zero it)."""
    monkeypatch.setattr(ckpt, "LOAD_CHUNK_BYTES", 1)
    state = _filled(Stack(), 1).state_dict()
    kept = {k: v.clone() for k, v in state.items()}
    load_model_checkpoint(Stack(), {"model": state}, LAYOUT)
    assert all(torch.equal(state[k], kept[k]) for k in kept)


def test_float16_file_is_cast_into_float32_parameters(tmp_path):
    src = _filled(Stack(), 2)
    torch.save({"model": {k: v.half() if torch.is_floating_point(v) else v for k, v in src.state_dict().items()}},
               tmp_path / "half.pth")
    dst = Stack()
    load_model_checkpoint(dst, tmp_path / "half.pth", LAYOUT)
    assert dst.layers[0].weight.dtype == torch.float32
    torch.testing.assert_close(dst.layers[0].weight, src.layers[0].weight.half().float(), rtol=0, atol=0)


def test_gzip_is_streamed_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    src = _filled(Stack(), 3)
    raw = tmp_path / "m.pth"
    torch.save({"model": src.state_dict()}, raw)
    (tmp_path / "m.pth.gz").write_bytes(gzip.compress(raw.read_bytes()))
    dst = Stack()
    load_model_checkpoint(dst, tmp_path / "m.pth.gz", LAYOUT)
    assert _equal(src, dst)
    obj = read_checkpoint(tmp_path / "m.pth.gz")  # kept tensors stay valid after the file is gone
    assert torch.equal(obj["model"]["layers.1.weight"], src.layers[1].weight)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_truncated_gzip_is_one_clear_error(tmp_path):
    data = gzip.compress(b"x" * 1000)
    (tmp_path / "cut.pt.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception) as err:
        read_checkpoint(tmp_path / "cut.pt.gz")
    assert type(err.value).__name__ == "RefbenchError" and "cannot be read" in str(err.value)


def test_legacy_non_zip_file_loads_without_mmap(tmp_path):
    src = _filled(Stack(), 4)
    torch.save({"model": src.state_dict()}, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    dst = Stack()
    load_model_checkpoint(dst, tmp_path / "old.pth", LAYOUT)
    assert _equal(src, dst)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc for RSS")
def test_loading_holds_the_model_once(tmp_path):
    """In a fresh process: loading a 128 MiB checkpoint into a built model raises the peak RSS by
    well under the model's size (the file is mapped and copied in 64 MiB pieces, never read whole)
    and leaves no copy behind."""
    width, depth = 2048, 8  # 8 x 16 MiB
    torch.save({"model": Stack(width, depth).state_dict()}, tmp_path / "big.pth")
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(REPO)!r})
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import torch
        from test_checkpoint_memory import Stack, LAYOUT
        from refbench.core.checkpoint import load_model_checkpoint, release_freed_memory

        def status():
            out = {{}}
            for line in open("/proc/self/status"):
                k = line.split(":")[0]
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(line.split()[1]) * 1024
            return out

        model = Stack({width}, {depth})
        release_freed_memory()
        open("/proc/self/clear_refs", "w").write("5")
        before = status()["VmRSS"]
        load_model_checkpoint(model, {str(tmp_path / "big.pth")!r}, LAYOUT)
        after = status()
        print(json.dumps({{"before": before, "after": after["VmRSS"], "peak": after["VmHWM"]}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    size = width * (width + 1) * depth * 4
    assert r["peak"] - r["before"] < 0.75 * size, r
    assert r["after"] - r["before"] < 0.1 * size, r
