"""Device, precision and batch-size selection for evaluation and training."""
from __future__ import annotations

import contextlib
from typing import Callable

import torch

from refbench.core.errors import RefbenchError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str | None) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``; None picks CUDA when available.  Clear error if absent."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise RefbenchError(f"--device {name!r} is not a device name (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RefbenchError("--device cuda was asked for, but this machine has no usable CUDA GPU "
                                "(torch.cuda.is_available() is False); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RefbenchError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif dev.type != "cpu":
        raise RefbenchError(f"--device {name!r} is not supported (use cpu or cuda)")
    return dev


def device_description(dev: torch.device) -> str:
    if dev.type == "cuda":
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{idx} {torch.cuda.get_device_name(idx)}"
    return f"cpu ({torch.get_num_threads()} threads)"


def autocast(dev: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for ``precision`` (fp32 = none).  fp16 on CPU is refused."""
    if precision not in PRECISIONS:
        raise RefbenchError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    if dev.type == "cpu" and dtype == torch.float16:
        raise RefbenchError("--precision fp16 needs a CUDA device; on CPU use bf16 or fp32")
    return torch.autocast(device_type=dev.type, dtype=dtype)


def precision_warning(dev: torch.device, precision: str) -> str | None:
    """A note for a run whose precision is slow on this machine (None when there is nothing to say).

    bf16 on a CPU without bfloat16 instructions (AVX512-BF16 or AMX) is emulated by torch: the
    paper models then run several times slower than in fp32.  The numbers are still bf16's, so the
    run is not refused; the note goes into the results' notes and onto the terminal.
    """
    from refbench.core.provenance import native_bf16_cpu

    if dev.type == "cpu" and precision == "bf16" and not native_bf16_cpu():
        return (f"--precision bf16 on a CPU without bfloat16 instructions (torch CPU capability "
                f"{torch.backends.cpu.get_cpu_capability()}, no AVX512-BF16/AMX): torch emulates bf16, which is "
                "slower than fp32 here (see docs/performance.md); use --precision fp32 on this machine")
    return None


def auto_batch_size(dev: torch.device, try_batch: Callable[[int], None], start: int = 64,
                    cpu_default: int = 8) -> int:
    """Largest power-of-two batch <= start that runs ``try_batch(b)`` without CUDA OOM.

    On CPU, returns ``cpu_default`` without trying: CPU throughput saturates at small batches.
    """
    if dev.type != "cuda":
        return cpu_default
    b = start
    while b >= 1:
        try:
            try_batch(b)
            torch.cuda.synchronize(dev)
            return b
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            b //= 2
    raise RefbenchError("even batch size 1 does not fit in GPU memory")
