"""Evaluation runner: batched, resumable, distributed, with full provenance."""
from refbench.eval.runner import EvalConfig, evaluate

__all__ = ["EvalConfig", "evaluate"]
