"""The package import graph: layers only import downwards, no cycles, data has no upward import.

The contracts live in pyproject.toml ([tool.importlinter]); import-linter is a dev dependency, so a
missing tool is a failure here, never a skip.
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    assert exe.exists(), "import-linter is missing: pip install -c constraints.txt -e '.[dev]'"
    out = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "broken" not in out.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_no_test_names_a_path_outside_the_repository():
    pattern = re.compile(r"""["'](/work|/root|/home|/tmp)/[A-Za-z]""")
    offenders = [f"{p.name}:{n}" for p in sorted((ROOT / "tests").glob("*.py"))
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not offenders, f"tests name machine paths: {offenders}"


def test_the_core_is_small_and_typed():
    """Every public function of refbench.core has a return annotation and a docstring (the contracts)."""
    import ast

    missing = []
    for path in sorted((ROOT / "refbench" / "core").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                if node.returns is None or ast.get_docstring(node) is None:
                    missing.append(f"{path.name}:{node.name}")
    assert not missing, f"public core functions without return type or docstring: {missing}"
