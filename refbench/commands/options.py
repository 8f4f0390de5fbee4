"""Option types shared by the commands: every number has a checked range (one-line error otherwise)."""
from __future__ import annotations

import math

import click


class _PositiveFloat(click.ParamType):
    """A finite float > 0 (``nan``, ``inf``, 0 and negatives are refused)."""

    name = "positive float"

    def convert(self, value, param, ctx):
        try:
            x = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(x) or x <= 0:
            self.fail(f"{value!r} must be a finite number > 0", param, ctx)
        return x


POSITIVE_FLOAT = _PositiveFloat()
BATCH_SIZE = click.IntRange(min=1)
WORKERS = click.IntRange(0, 64)
LIMIT = click.IntRange(min=1)
BOOTSTRAP = click.IntRange(0, 1_000_000)
SEED = click.IntRange(0, 2**31 - 1)
PRECISION = click.Choice(["fp32", "bf16", "fp16"])
