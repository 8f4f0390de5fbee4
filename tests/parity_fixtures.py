"""The in-repo parity fixtures (tests/fixtures/parity: key/shape specs, the weight generator, inputs and the
official code's outputs).  They ship with the repository, so a missing file is a failure, never a skip."""
from __future__ import annotations

import importlib.util
from pathlib import Path

PARITY_ROOT = Path(__file__).resolve().parent / "fixtures" / "parity"


def parity_root(model: str) -> Path:
    """tests/fixtures/parity, after checking that ``model``'s fixture and the weight generator are there."""
    for rel in ("make_weights.py", f"{model}/spec.json", f"{model}/case_a.npz"):
        assert (PARITY_ROOT / rel).is_file(), f"parity fixture tests/fixtures/parity/{rel} is missing from the repository"
    return PARITY_ROOT


def make_weights_module(root: Path = PARITY_ROOT):
    """The fixture's deterministic weight generator, imported from its file."""
    spec = importlib.util.spec_from_file_location("parity_make_weights", root / "make_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
