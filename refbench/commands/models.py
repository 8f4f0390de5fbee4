"""``refbench models``: the registered models and the facts each declares."""
from __future__ import annotations

import click


@click.command(name="models")
def models_cmd() -> None:
    """List registered models: variants, paper protocol, binarization, checkpoint files and costs.

    Example: refbench models
    """
    from refbench.core.models import list_models

    for info in list_models():
        click.echo(f"{info.name}  ({info.paper})" if info.paper else info.name)
        if info.description:
            click.echo(f"  {info.description}")
        extra = "".join(f" ({v}: {p})" for v, p in info.variant_protocols.items())
        click.echo(f"  variants: {', '.join(info.variants)}   protocol: {info.protocol}{extra}   "
                   f"binarization: {info.binarize}")
        for kind, label in (("official", "official checkpoints"), ("train", "train with refbench"),
                            ("shipped", "shipped weights")):
            entries = [c for c in info.checkpoints if c.kind == kind]
            if entries:
                click.echo(f"  {label}: " + ", ".join(
                    f"{c.file} ({c.variant}: {', '.join(c.datasets)})" for c in entries))
        for variant, parts in info.pretrained.items():
            click.echo(f"  {variant} recipe starts from: " + ", ".join(
                f"{p.name} ({p.file_format}; --model-arg {p.model_arg}=PATH)" for p in parts))
