"""Model registry: built-ins, the ``refbench.models`` entry-point group, errors."""
from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from refbench.core.errors import RefbenchError
from refbench.core.models import ENTRY_POINT_GROUP, ModelInfo, RISModel, build_model, get_model_info, registry

FAKE_MODULE = '''
import torch
from refbench.core.models import ModelInfo, RISModel


class Constant(RISModel):
    name = "fake"
    binarize_rule = "sigmoid>0.5"
    input_size = 32

    def __init__(self, variant, value=1.0):
        super().__init__()
        self.variant = variant
        self.value = torch.nn.Parameter(torch.tensor(float(value)))

    def forward(self, images, input_ids, attention_mask):
        return self.value.expand(images.shape[0], 1, *images.shape[-2:])


def build(variant="small", **overrides):
    return Constant(variant, **overrides)


MODEL_INFO = ModelInfo(name="fake", builder=build, variants=("small", "large"), protocol="lavt",
                       binarize="sigmoid>0.5", description="constant logits, for tests")
'''


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """A package registered only through ``<dist>.dist-info/entry_points.txt`` on sys.path."""
    (tmp_path / "refbench_fake_model.py").write_text(FAKE_MODULE)
    dist = tmp_path / "refbench_fake_model-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: refbench-fake-model\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(f"""\
        [{ENTRY_POINT_GROUP}]
        fake = refbench_fake_model:MODEL_INFO
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("refbench_fake_model", None)


def test_builtin_lavt_is_registered_lazily():
    assert registry()["lavt"] == "baselines.lavt:MODEL_INFO"
    info = get_model_info("lavt")
    assert isinstance(info, ModelInfo)
    assert (info.variants, info.protocol, info.binarize) == (("paper", "tiny"), "lavt", "argmax")
    assert "refcoco.pth" in [c.file for c in info.checkpoints]
    assert info.shipped_checkpoint("tiny").name == "lavt_tiny_synth.pt" and info.shipped_checkpoint("paper") is None
    assert info.cost("paper").gflops > 100 and "input_size" in info.config_fields("tiny")


def test_build_lavt_tiny_through_registry():
    model = build_model("lavt", "tiny")
    assert isinstance(model, RISModel) and model.variant == "tiny"
    assert get_model_info("lavt").variants[0] == "paper"  # the default variant


def test_unknown_model_and_variant():
    with pytest.raises(RefbenchError, match="unknown model 'lavtt'. Did you mean 'lavt'"):
        build_model("lavtt")
    with pytest.raises(RefbenchError, match="unknown variant of model 'lavt' 'huge'"):
        build_model("lavt", "huge")


def test_entry_point_model(fake_distribution):
    names = registry()
    assert names["fake"] == "refbench_fake_model:MODEL_INFO"
    model = build_model("fake", value=2.5)
    assert model.variant == "small" and model.binarize_rule == "sigmoid>0.5"
    masks = model.predict(torch.zeros(2, 3, 8, 8), torch.zeros(2, 20, dtype=torch.long),
                          torch.ones(2, 20, dtype=torch.long))
    assert masks.shape == (2, 8, 8) and masks.all()
    assert build_model("fake", "large").variant == "large"
    assert {"fake", "lavt"} <= set(registry())
    assert get_model_info("fake").description == "constant logits, for tests"


def test_broken_entry_point_is_one_clear_error(fake_distribution, tmp_path):
    dist = tmp_path / "refbench_fake_model-0.1.dist-info"
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nbroken = refbench_fake_model:DOES_NOT_EXIST\n")
    with pytest.raises(RefbenchError, match="model entry 'refbench_fake_model:DOES_NOT_EXIST' cannot be loaded"):
        build_model("broken")


def test_entry_point_cannot_shadow_builtin(fake_distribution, tmp_path):
    dist = tmp_path / "refbench_fake_model-0.1.dist-info"
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nlavt = refbench_fake_model:MODEL_INFO\n")
    assert registry()["lavt"] == "baselines.lavt:MODEL_INFO"


# ---------------------------------------------------------------------------------------------
# benchmarks/model_speed.py: generic over the registry
# ---------------------------------------------------------------------------------------------
def _model_speed():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "model_speed.py"
    spec = importlib.util.spec_from_file_location("model_speed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flop_count_convention_two_per_multiply_add():
    ms = _model_speed()

    class Net(RISModel):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(12, 5)

        def forward(self, images, input_ids, attention_mask):
            return self.head(images)

    flops = ms.count_flops(Net(), (torch.zeros(3, 12), None, None))
    assert flops == {"total": 2 * 3 * 12 * 5, "head": 2 * 3 * 12 * 5}


def test_flop_count_includes_cpu_flash_attention():
    ms = _model_speed()
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    class Attn(RISModel):
        def forward(self, images, input_ids, attention_mask):
            return F.scaled_dot_product_attention(images, images, images, attn_mask=torch.zeros(16, 16))

    q = torch.randn(2, 4, 16, 8)
    with FlopCounterMode(display=False) as plain, torch.no_grad():
        Attn()(q, None, None)
    counted = ms.count_flops(Attn(), (q, None, None))["total"]
    assert counted == 2 * (2 * 2 * 4 * 16 * 16 * 8)  # QK^T and AV, 2 FLOPs per multiply-add
    assert plain.get_total_flops() in (0, counted)  # torch alone misses the CPU kernel


def test_model_speed_runs_on_tiny_lavt(tmp_path, capsys):
    import json

    ms = _model_speed()
    out = tmp_path / "speed.json"
    code = ms.main(["--model", "lavt", "--variant", "tiny", "--device", "cpu", "--repeats", "1", "--warmup", "0",
                    "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["params"]["total"] == sum(v for k, v in report["params"].items() if k != "total")
    flops = report["flops_batch1"]
    assert flops["total"] == flops["backbone"] + flops["classifier"] + flops["text_encoder"]
    assert set(report["latency"]) == {"fp32", "bf16"} and report["latency"]["fp32"]["median_s"] > 0
    assert "GFLOPs per image" in capsys.readouterr().out
    assert ms.main(["--model", "lavt", "--variant", "tiny", "--device", "cpu", "--precisions", "fp8",
                    "--no-flops", "--repeats", "1"]) == 2
