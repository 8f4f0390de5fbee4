#!/usr/bin/env python
"""Model cost: parameters, forward FLOPs, latency, peak memory, and GPU throughput.

Works for every model of the registry (``refbench.core.models``), built with random weights:

    python benchmarks/model_speed.py --model lavt --variant paper            # CPU: fp32 + bf16 autocast
    python benchmarks/model_speed.py --model lavt --variant tiny --batch 8
    python benchmarks/model_speed.py --model magnet --device cuda            # + images/s sweep in bf16

What is printed:
  params       parameters (``numel`` summed), total and per top-level child
  FLOPs        one forward pass at batch 1, counted by ``torch.utils.flop_counter.FlopCounterMode``:
               matmul / conv / attention only, **2 FLOPs per multiply-add**; element-wise ops,
               norms, softmax and interpolation are not counted.  CPU flash attention (not in
               torch's table) is counted with torch's own SDPA formula.
  latency      wall time of one forward (``no_grad``, ``eval``), median / min over ``--repeats``
               after ``--warmup`` calls, per precision: fp32, and bf16 under ``torch.autocast``
  peak memory  CPU: peak resident set size of the process while the forwards run (sampled every
               ms from /proc, from before the first call, since the allocator keeps freed memory)
               and its increase over the RSS before that call (weights and inputs excluded);
               CUDA: ``torch.cuda.max_memory_allocated`` and its increase over the weights
  throughput   CUDA only: images/s in bf16 at batch 1 and over doubling batch sizes until out of
               memory (or ``--max-batch``); the best is reported

``--write-results`` writes these figures into benchmarks/RESULTS.md, section
``model_speed_<model>_<variant>_<device>`` (one per model, variant and device kind).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from refbench.core.errors import RefbenchError  # noqa: E402
from refbench.core.models import RISModel, build_model  # noqa: E402

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def dummy_inputs(model: RISModel, batch: int, size: int | None = None, device: str = "cpu",
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalized-looking images (B, 3, S, S) and full-length token ids in [1000, 2000) + masks."""
    g = torch.Generator().manual_seed(seed)
    s = size or model.input_size
    images = torch.randn(batch, 3, s, s, generator=g)
    ids = torch.randint(1000, 2000, (batch, model.token_length), generator=g)
    mask = torch.ones_like(ids)
    return images.to(device), ids.to(device), mask.to(device)


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """``{"total": n, child_name: n, ...}`` over top-level children (parameters, not buffers)."""
    out = {"total": sum(p.numel() for p in model.parameters())}
    for name, child in model.named_children():
        n = sum(p.numel() for p in child.parameters())
        if n:
            out[name] = n
    return out


def _cpu_flash_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def count_flops(model: RISModel, inputs: tuple[torch.Tensor, ...]) -> dict[str, int]:
    """Forward FLOPs (2 per multiply-add; matmul/conv/attention only), total and per top-level child."""
    from torch.utils.flop_counter import FlopCounterMode

    custom = {}
    cpu_flash = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_flash is not None:
        custom[cpu_flash] = _cpu_flash_sdpa_flops
    counter = FlopCounterMode(display=False, custom_mapping=custom)
    with torch.no_grad(), counter:
        model(*inputs)
    # Per module, FlopCounterMode counts what ran inside each *called* module (a module whose
    # methods are driven directly, like a Swin stage loop, has no entry of its own): sum the
    # outermost called modules under each top-level child.
    per_module = {k: int(sum(v.values())) for k, v in counter.get_flop_counts().items()}
    root = type(model).__name__
    out = {"total": counter.get_total_flops()}
    for name, _ in model.named_children():
        prefix = f"{root}.{name}"
        under = sorted(k for k in per_module if k == prefix or k.startswith(prefix + "."))
        outer = [k for k in under if not any(k.startswith(p + ".") for p in under if p != k)]
        if outer:
            out[name] = sum(per_module[k] for k in outer)
    return out


class PeakRSS:
    """Context manager sampling the process RSS (bytes) every ``interval`` s from /proc/self/statm."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.start = self.peak = 0
        self._stop = threading.Event()

    def rss(self) -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self.page
        except OSError:  # not Linux: ru_maxrss is the best we have (KiB on Linux/BSD, bytes on macOS)
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRSS":
        self.start = self.peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def _release_freed_memory() -> None:
    """Return freed heap memory to the OS (glibc ``malloc_trim``), so RSS peaks are comparable."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: peaks of later runs may be underestimated
        pass


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _autocast(device: str, dtype: torch.dtype | None):
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def measure_latency(model: RISModel, inputs: tuple[torch.Tensor, ...], device: str, precision: str,
                    repeats: int, warmup: int) -> dict[str, float]:
    """Forward latency (s) and peak memory (bytes) at one precision."""
    dtype = PRECISIONS[precision]
    times = []
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        meter = nullcontext()
    else:
        _release_freed_memory()  # so that memory cached from an earlier run does not hide this one's
        meter = PeakRSS()  # from before the first call: the allocator keeps freed memory afterwards
    with torch.no_grad(), _autocast(device, dtype), meter:
        for _ in range(warmup):
            model(*inputs)
        _sync(device)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(*inputs)
            _sync(device)
            times.append(time.perf_counter() - t0)
    if device.startswith("cuda"):
        peak, base_mem = torch.cuda.max_memory_allocated(), base
    else:
        peak, base_mem = meter.peak, meter.start
    return {"median_s": statistics.median(times), "min_s": min(times), "mean_s": statistics.fmean(times),
            "peak_bytes": peak, "peak_increase_bytes": peak - base_mem, "repeats": repeats}


def throughput_sweep(model: RISModel, device: str, precision: str, max_batch: int, seconds: float = 3.0,
                     size: int | None = None) -> dict[int, float]:
    """CUDA images/s per batch size (1, 2, 4, ...) until OOM or ``max_batch``."""
    dtype = PRECISIONS[precision]
    results: dict[int, float] = {}
    batch = 1
    while batch <= max_batch:
        try:
            inputs = dummy_inputs(model, batch, size, device)
            with torch.no_grad(), _autocast(device, dtype):
                model(*inputs)  # warm-up (kernel selection)
                _sync(device)
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds or n < 3:
                    model(*inputs)
                    n += 1
                _sync(device)
            results[batch] = batch * n / (time.perf_counter() - t0)
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
        batch *= 2
    return results


def _fmt_bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def run(args: argparse.Namespace) -> dict:
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RefbenchError("--device cuda requested but no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 numbers are true fp32
        torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    model = build_model(args.model, args.variant).eval().to(device)
    size = args.size or model.input_size
    report: dict = {"model": args.model, "variant": model.variant, "device": device, "input_size": size,
                    "batch": args.batch, "threads": torch.get_num_threads(), "torch": torch.__version__}
    if device.startswith("cuda"):
        report["device_name"] = torch.cuda.get_device_name()
    print(f"{args.model} ({model.variant}) on {device}"
          + (f" [{report['device_name']}]" if "device_name" in report else f" [{torch.get_num_threads()} threads]")
          + f", input {size}x{size}, torch {torch.__version__}")

    params = count_parameters(model)
    report["params"] = params
    parts = ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in params.items() if k != "total")
    print(f"params      {params['total']:,} ({params['total'] / 1e6:.2f} M: {parts})")

    if not args.no_flops:
        flops = count_flops(model, dummy_inputs(model, 1, size, device))
        report["flops_batch1"] = flops
        parts = ", ".join(f"{k} {v / 1e9:.3g}" for k, v in flops.items() if k != "total")
        print(f"FLOPs       {flops['total'] / 1e9:.4g} GFLOPs per image (forward, 2 FLOPs/MAC; {parts})")

    inputs = dummy_inputs(model, args.batch, size, device)
    report["latency"] = {}
    for precision in args.precisions.split(","):
        if precision not in PRECISIONS:
            raise RefbenchError(f"--precisions: unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
        r = measure_latency(model, inputs, device, precision, args.repeats, args.warmup)
        report["latency"][precision] = r
        label = "fp32" if precision == "fp32" else f"{precision} autocast"
        print(f"latency     {label:<13} batch {args.batch}: median {r['median_s'] * 1e3:.0f} ms, "
              f"min {r['min_s'] * 1e3:.0f} ms ({args.repeats} runs); "
              f"peak {'GPU alloc' if device.startswith('cuda') else 'RSS'} {_fmt_bytes(r['peak_bytes'])} "
              f"(+{_fmt_bytes(r['peak_increase_bytes'])} over the RSS before the first call)")

    if device.startswith("cuda") and not args.no_sweep:
        sweep = throughput_sweep(model, device, args.sweep_precision, args.max_batch, args.sweep_seconds, size)
        report["throughput_images_per_s"] = {str(k): v for k, v in sweep.items()}
        if sweep:
            best = max(sweep, key=sweep.get)
            print(f"throughput  {args.sweep_precision} autocast: {sweep[1]:.1f} img/s at batch 1, "
                  f"best {sweep[best]:.1f} img/s at batch {best} "
                  f"(tried {', '.join(str(b) for b in sweep)})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    if args.write_results:
        write_report(report, args)
    return report


def write_report(report: dict, args: argparse.Namespace) -> None:
    """The report as section ``model_speed_<model>_<variant>_<device>`` of benchmarks/RESULTS.md."""
    from results_md import markdown_table, write_results

    cuda = report["device"].startswith("cuda")
    p = report["params"]
    rows = [("parameters", f"{p['total']:,} ({p['total'] / 1e6:.2f} M: "
             + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in p.items() if k != "total") + ")")]
    if "flops_batch1" in report:
        f = report["flops_batch1"]
        rows.append(("forward FLOPs per image (batch 1)", f"{f['total'] / 1e9:.4g} G ("
                     + ", ".join(f"{k} {v / 1e9:.3g} G" for k, v in f.items() if k != "total") + ")"))
    for precision, r in report["latency"].items():
        label = "fp32" if precision == "fp32" else f"{precision} autocast"
        rows.append((f"latency {label}, batch {report['batch']}",
                     f"median {r['median_s'] * 1e3:.0f} ms, min {r['min_s'] * 1e3:.0f} ms (of {r['repeats']} runs)"))
        rows.append((f"peak {'GPU memory allocated' if cuda else 'RSS'} {label}",
                     f"{_fmt_bytes(r['peak_bytes'])} (+{_fmt_bytes(r['peak_increase_bytes'])} over "
                     f"{'the weights' if cuda else 'the RSS before the first call'})"))
    sweep = report.get("throughput_images_per_s")
    if sweep:
        best = max(sweep, key=sweep.get)
        rows.append((f"throughput {args.sweep_precision} autocast",
                     f"{sweep['1']:.1f} images/s at batch 1, best {sweep[best]:.1f} images/s at batch {best}"))
    dev = "cuda" if cuda else "cpu"
    write_results(f"model_speed_{report['model']}_{report['variant']}_{dev}",
                  f"Model cost: {report['model']} ({report['variant']}) on {dev}",
                  [markdown_table(("quantity", "measured"), rows, "ll")],
                  [f"Random weights (seed 0), input {report['input_size']}x{report['input_size']}, "
                   f"{args.warmup} warm-up call(s) per precision. FLOPs: `torch.utils.flop_counter`, 2 FLOPs per "
                   "multiply-add, matmul/convolution/attention only."],
                  {"device": report["device_name"]} if cuda else None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--model", required=True, help="registry name (lavt, magnet, dmmi, ...)")
    ap.add_argument("--variant", default=None, help="paper | tiny (default: the model's first variant)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    ap.add_argument("--batch", type=int, default=1, help="batch size of the latency runs")
    ap.add_argument("--size", type=int, default=None, help="input side (default: the model's input_size)")
    ap.add_argument("--precisions", default="fp32,bf16", help="comma list of fp32, bf16, fp16 (autocast)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    ap.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    ap.add_argument("--no-sweep", action="store_true", help="skip the CUDA batch-size sweep")
    ap.add_argument("--sweep-precision", default="bf16", choices=sorted(PRECISIONS))
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--sweep-seconds", type=float, default=3.0)
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    ap.add_argument("--write-results", action="store_true", help="write the figures into benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    try:
        run(args)
    except RefbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
