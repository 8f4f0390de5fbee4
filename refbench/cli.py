"""The ``refbench`` command line.  Thin: parse options, call library functions, print.

Subcommands live in their own modules (``refbench/commands/*.py``) and are imported
lazily, so ``refbench --help`` stays fast and a broken optional part cannot break the rest.
Every :class:`~refbench.core.errors.RefbenchError` becomes one line on stderr and exit code 2.
"""
from __future__ import annotations

import errno
import sys

import click

from refbench.core import __version__
from refbench.core.errors import RefbenchError
from refbench.core.huge_pages import request_huge_pages
from refbench.core.registry import Registry

#: subcommands, imported on first use ("module:attribute" of a click.Command)
COMMANDS: Registry[click.Command] = Registry("command")
for _name, _target in {
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
    "predict": "refbench.commands.predict:predict_cmd",
    "analyze": "refbench.commands.analyze:analyze_cmd",
    "report": "refbench.commands.report:report_cmd",
}.items():
    COMMANDS.register(_name, _target)


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return COMMANDS.names()

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return COMMANDS.get(name) if name in COMMANDS else None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="refbench")
def cli() -> None:
    """refbench: exact, fast, reproducible evaluation for Referring Image Segmentation."""


def one_line(text: object) -> str:
    """A message on one line: newlines and other control characters become spaces."""
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> None:
    """Console entry point.  Anything a user can cause ends as ONE line on stderr and exit code 2:
    RefbenchError and leaderboards' LeaderboardError (bad input, unknown names), click's usage errors
    (unknown option, value out of range) and a full disk or a permission refused while writing."""
    from leaderboards.errors import LeaderboardError

    request_huge_pages()  # before torch is imported: faster CPU forwards (refbench.core.huge_pages)
    try:
        rv = cli.main(args=argv, prog_name="refbench", standalone_mode=False)
    except (RefbenchError, LeaderboardError) as e:
        click.echo(f"error: {one_line(e)}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.UsageError as e:
        where = f"refbench {e.ctx.command_path.split(' ', 1)[1]}: " if e.ctx and " " in e.ctx.command_path else ""
        click.echo(f"error: {where}{one_line(e.format_message())} (see --help)", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"error: {one_line(e.format_message())}", err=True)
        sys.exit(2 if e.exit_code in (1, 2) else e.exit_code)
    except OSError as e:
        if e.errno is None or e.errno not in _USER_ERRNOS:
            raise
        click.echo(f"error: {one_line(e)}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


# OS errors a user causes (a full disk, a read-only or forbidden path), reported in one line
_USER_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT, errno.ENAMETOOLONG}
