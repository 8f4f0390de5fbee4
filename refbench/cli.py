"""The ``refbench`` command line.  Thin: parse options, call library functions, print.

Subcommands live in their own modules (``refbench/commands/*.py``) and are imported
lazily, so ``refbench --help`` stays fast and a broken optional part cannot break the rest.
Every :class:`~refbench.core.errors.RefbenchError` becomes one line on stderr and exit code 2.
"""
from __future__ import annotations

import importlib
import sys

import click

from refbench.core import __version__
from refbench.core.errors import RefbenchError

# command name -> "module:attribute" of a click.Command
COMMANDS: dict[str, str] = {
    "score": "refbench.commands.score:score",
    "demo": "refbench.commands.demo:demo",
    "data": "refbench.commands.data:data",
    "build-dataset": "refbench.commands.build_dataset:build_dataset",
    "eval": "refbench.commands.eval:eval_cmd",
    "models": "refbench.commands.models:models_cmd",
    "table": "refbench.commands.table:table",
    "plot": "refbench.commands.plot:plot",
    "train": "refbench.commands.train:train_cmd",
    "verify": "refbench.commands.verify:verify_cmd",
    "reproduce": "refbench.commands.reproduce:reproduce_cmd",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="refbench")
def cli() -> None:
    """refbench: exact, fast, reproducible evaluation for Referring Image Segmentation."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI, turning RefbenchError into one line + exit 2."""
    try:
        rv = cli.main(args=argv, prog_name="refbench", standalone_mode=False)
    except RefbenchError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(2 if e.exit_code == 2 else e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)
