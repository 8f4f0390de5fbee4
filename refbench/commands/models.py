"""``refbench models``: the registered models."""
from __future__ import annotations

import click


@click.command(name="models")
def models_cmd() -> None:
    """List registered models, their variants, accepted official checkpoints and paper protocol."""
    from refbench.core.models import list_models

    for info in list_models():
        click.echo(f"{info.name}  ({info.paper})" if info.paper else info.name)
        if info.description:
            click.echo(f"  {info.description}")
        extra = "".join(f" ({v}: {p})" for v, p in info.variant_protocols.items())
        click.echo(f"  variants: {', '.join(info.variants)}   protocol: {info.protocol}{extra}   "
                   f"binarization: {info.binarize}")
        if info.checkpoints:
            click.echo("  official checkpoints: " + ", ".join(f"{k} ({v})" for k, v in info.checkpoints.items()))
