"""CLI subcommands, one module each (imported lazily by refbench.cli)."""
