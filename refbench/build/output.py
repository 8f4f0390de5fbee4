"""Where a dataset build writes: checked before any work, staged beside ``--out``, never destroying
what refbench did not make, and no worker process outliving a killed build.

Rules (on top of :mod:`refbench.core.outdir`):

* :func:`check_build_output` runs before anything is read: ``--out`` must not be a file, must be
  writable, must neither be, contain nor lie inside any input path, and an existing non-empty
  ``--out`` needs ``--force`` *and* must be refbench-made.
* **refbench-made** means the folder holds the marker ``.refbench-output.json`` — or, for folders
  built before the marker existed, it is a *verified legacy build*: its ``manifest.json`` was written
  by a refbench builder (``generator`` ``refbench.build.synth`` / ``refbench.build.refzom``), every
  regular file in it but ``manifest.json`` is listed in that manifest with the same sha256, and
  every symlink is one of the image links the manifest records.  A single foreign or edited file makes it not
  refbench-made, and ``--force`` refuses it.  A verified legacy build gets the marker when it is
  about to be replaced.
* :func:`staged_output` builds into ``.<name>.refbench-tmp-<pid>.*`` beside ``--out`` and swaps it
  in (the temporary folder is removed on any failure, including a failed final swap); stale
  temporaries of dead processes are removed by the next build of the same ``--out``.
* :func:`refbench.core.processes.die_with_parent` is the initializer of a build's worker pool (and of
  eval's DataLoader workers): no worker outlives a killed command.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterable, Iterator

from refbench.core.errors import RefbenchError
from refbench.core.processes import die_with_parent  # noqa: F401  (the builders' pool initializer)
from refbench.core.outdir import MARKER, StagedDir, check_output, is_refbench_output, mark_output
from refbench.core.provenance import sha256_file

GENERATORS = ("refbench.build.synth", "refbench.build.refzom")


def legacy_build_problem(path: Path) -> str | None:
    """None when ``path`` is a verified legacy refbench build (module doc), else why it is not."""
    manifest = path / "manifest.json"
    try:
        doc = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return "it has no readable manifest.json"
    if not isinstance(doc, dict) or doc.get("generator") not in GENERATORS or not isinstance(doc.get("files"), dict):
        return "its manifest.json was not written by a refbench dataset builder"
    listed: dict = doc["files"]
    links = set((doc.get("image_links") or {}).keys())
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(path).as_posix()
            if p.is_symlink():
                if rel not in links:
                    return f"{rel} is a link the manifest does not record"
            elif name in filenames and rel != "manifest.json":
                if rel not in listed:
                    return f"{rel} is not listed in its manifest.json"
                if sha256_file(p) != listed[rel]:
                    return f"{rel} differs from the file refbench wrote (sha256 mismatch)"
    return None


def _occupied(out: Path) -> bool:
    return out.exists() and not (out.is_dir() and not any(out.iterdir()))


def check_build_output(out: str | os.PathLike, force: bool,
                       inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Refuse, before any work, an ``--out`` a build cannot or must not write (module doc); resolved path."""
    path = check_output(out, "--out", folder=True, inputs=inputs)
    if not _occupied(path):
        return path
    if not force:
        raise RefbenchError(f"--out {path} already exists and is not empty; pass --force to replace it (only a "
                            f"folder refbench built is ever replaced) or choose a new path")
    if not is_refbench_output(path):
        why = legacy_build_problem(path)
        if why is not None:
            raise RefbenchError(f"--out {path} holds files refbench did not make ({why}); refusing to replace it "
                                f"even with --force: choose a new path or empty it yourself")
    return path


def adopt_legacy_build(out: Path) -> bool:
    """Give a verified legacy build (module doc) the marker, so that ``--force`` may replace it."""
    if not _occupied(out) or is_refbench_output(out) or legacy_build_problem(out) is not None:
        return False
    mark_output(out, "dataset", adopted_from="manifest.json of a build made before the marker existed")
    return True


@contextlib.contextmanager
def staged_output(out: Path, force: bool, **info: object) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success it replaces ``out`` (with the marker),
    on any failure it is removed and ``out`` is untouched."""
    if force:
        adopt_legacy_build(out)
    staged = StagedDir(out, kind="dataset", force=force, **info)
    try:
        with staged as tmp:
            yield tmp
    except BaseException:
        if staged.tmp is not None:  # a failed final swap leaves the finished temporary folder behind
            shutil.rmtree(staged.tmp, ignore_errors=True)
        raise


__all__ = ["MARKER", "adopt_legacy_build", "check_build_output", "die_with_parent", "legacy_build_problem",
           "staged_output"]
