import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture
def run_cli(capsys):
    """Run ``refbench ARGS`` in-process; returns (exit code, stdout, stderr)."""
    from refbench.cli import main

    def _run(*args):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run


@pytest.fixture(scope="session")
def synth_tiny(tmp_path_factory):
    """The tiny synthetic benchmark (40 images, all three formats), built once per session."""
    from refbench.build.synth import build_synth

    root = tmp_path_factory.mktemp("synth_tiny")
    build_synth(root, seed=0, size="tiny")
    return root


@pytest.fixture(scope="session")
def lavt_tiny_checkpoint(tmp_path_factory):
    """A fixed-weight tiny LAVT checkpoint in refbench's format (deterministic seed)."""
    import torch

    from refbench.core.checkpoint import save_checkpoint
    from refbench.core.models import build_model

    torch.manual_seed(0)
    model = build_model("lavt", "tiny")
    path = tmp_path_factory.mktemp("ckpt") / "lavt_tiny.pt"
    save_checkpoint(model, path)
    return path


def required_tool(name: str, install: str) -> str:
    """The path of an external tool a test needs.  Missing: a failure in CI (``CI=1``, set by .ci/run,
    which installs it), a skip naming the install command elsewhere."""
    import shutil

    exe = shutil.which(name)
    if exe is not None:
        return exe
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.fail(f"{name} is required in CI ({install}; .ci/run installs it)")
    pytest.skip(f"needs {name}: {install}")
