"""bf16 on a CPU without bfloat16 instructions is emulated by torch (several times slower than fp32):
eval, predict and train say so in their notes and on the terminal, and every results file records
the CPU whose kernels produced its numbers."""
import torch

import refbench.core.provenance as provenance
from refbench.core.results import read_results
from refbench.eval.device import precision_warning


def eval_args(root, ckpt, out, *extra):
    return ["eval", "--model", "lavt", "--variant", "tiny", "--split", "synth/val", "--data-root", root,
            "--checkpoint", ckpt, "--limit", 4, "--batch-size", 4, "--bootstrap", 0, "--workers", 0,
            "--out", out, *extra]


def test_warning_only_for_bf16_on_a_cpu_without_bf16(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(provenance, "native_bf16_cpu", lambda: False)
    note = precision_warning(cpu, "bf16")
    assert note and "without bfloat16 instructions" in note and "--precision fp32" in note
    assert precision_warning(cpu, "fp32") is None
    assert precision_warning(torch.device("cuda"), "bf16") is None  # GPUs: nothing to say
    monkeypatch.setattr(provenance, "native_bf16_cpu", lambda: True)
    assert precision_warning(cpu, "bf16") is None


def test_eval_bf16_without_native_bf16_notes_it(monkeypatch, synth_tiny, lavt_tiny_checkpoint, tmp_path, run_cli):
    monkeypatch.setattr(provenance, "native_bf16_cpu", lambda: False)
    code, out, err = run_cli(*eval_args(synth_tiny, lavt_tiny_checkpoint, tmp_path / "run", "--precision", "bf16"))
    assert code == 0, err
    assert "without bfloat16 instructions" in out + err
    res = read_results(tmp_path / "run" / "results.json")
    assert any("without bfloat16 instructions" in n for n in res.notes)


def test_results_record_the_cpu(synth_tiny, lavt_tiny_checkpoint, tmp_path, run_cli):
    code, _, err = run_cli(*eval_args(synth_tiny, lavt_tiny_checkpoint, tmp_path / "run"))
    assert code == 0, err
    env = read_results(tmp_path / "run" / "results.json").environment
    assert env["cpu"] == provenance.cpu_model() and env["cpu"]
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["cpu_native_bf16"] in (True, False)
