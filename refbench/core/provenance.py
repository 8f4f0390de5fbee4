"""Provenance for results files: versions, git commit, file digests, device."""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import subprocess
from pathlib import Path

from refbench.core import __version__


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def git_commit() -> str | None:
    """The commit of the refbench source tree (with ``-dirty`` if modified), or None."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=40"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def native_bf16_cpu() -> bool:
    """Whether this CPU has bfloat16 instructions that torch's oneDNN kernels use (AVX512-BF16 or
    AMX).  Without them torch emulates bf16 on CPU, far slower than float32."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - torch builds without oneDNN
        return False


def cpu_facts() -> dict:
    """What of the CPU can change a float32 result in the last bits or a bf16 run's speed: its model
    name, the vector ISA torch dispatches to (``AVX2``, ``AVX512``, ...) and native bf16 support."""
    import torch

    return {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_native_bf16": native_bf16_cpu()}


def environment() -> dict:
    """Versions of everything that can change a number (software, and the CPU whose kernels ran)."""
    import numpy
    import torch

    env = {"refbench": __version__, "git_commit": git_commit(), "python": platform.python_version(),
           "torch": torch.__version__, "numpy": numpy.__version__, "platform": platform.platform(), **cpu_facts()}
    try:
        import transformers
        env["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover
        env["transformers"] = None
    return env


def now_iso() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
