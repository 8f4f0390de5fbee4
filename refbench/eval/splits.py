"""Opening the split a command evaluates, building the default synthetic benchmark when needed.

``synth*`` splits asked for without a data root that holds them come from the default synthetic
benchmark (size small, seed 0), built once into ``$REFBENCH_CACHE`` (default ``~/.cache/refbench``).
An explicit ``--data-root`` is never substituted: if it lacks the split, that is an error naming
the command that builds it there.  (``$REFBENCH_DATA`` is a default, not a choice made for this
command: a synthetic split it lacks comes from the cache, and the run records which root it read.)
"""
from __future__ import annotations

import os
from pathlib import Path

from refbench.core.errors import RefbenchError
from refbench.core.progress import SILENT, Reporter
from refbench.data.layout import find_dataset_files, resolve_data_root
from refbench.data.split_data import SplitData, open_split
from refbench.data.splits import parse_split


def synth_data_root(name: str, data_root: str | os.PathLike | None, explicit: bool,
                    reporter: Reporter = SILENT, synth_size: str = "small") -> Path | None:
    """The data root to read ``name`` from: ``data_root`` unless it is a synthetic split it lacks
    (then the cache, built on first use; refused when ``explicit``)."""
    d = parse_split(name).definition
    root = resolve_data_root(data_root)
    if not d.synthetic or (root is not None and root.is_dir() and find_dataset_files(root, d) is not None):
        return root
    if explicit and data_root is not None:
        if root is not None and not root.is_dir():
            raise RefbenchError(f"--data-root {data_root} does not exist; pass the folder that holds the datasets, "
                                "or leave --data-root out to use the default synthetic benchmark")
        raise RefbenchError(f"--data-root {data_root} holds no {d.key!r} dataset; build it there with "
                            f"`refbench build-dataset synth --out {data_root}` or leave --data-root out to use the "
                            "default synthetic benchmark")
    from refbench.build.synth import default_cache_dir, ensure_synth

    target = default_cache_dir() / f"synth-{synth_size}-seed0"
    if not (target / "manifest.json").is_file():
        reporter.message(f"building the default synthetic benchmark into {target} (once, ~15 s)")
    return ensure_synth(synth_size, 0)


def open_eval_split(name: str, data_root: str | os.PathLike | None = None, explicit: bool = True,
                    reporter: Reporter = SILENT, synth_size: str = "small", **kwargs) -> SplitData:
    """:func:`refbench.data.open_split` after :func:`synth_data_root` (``synth_size``: of the cached
    default benchmark; tests use ``tiny``)."""
    return open_split(name, synth_data_root(name, data_root, explicit, reporter, synth_size), **kwargs)
