"""Output folders: checked before any work, built beside their destination, never destroying a user's files.

Every folder refbench creates as a whole (a built dataset, an eval run, a training run, a
reproduction) carries a marker file, :data:`MARKER`, naming what made it.  The rules:

* :func:`check_output` runs before the work starts: the path must not be a file where a folder is
  expected (or the reverse), its nearest existing parent must be writable, and it must neither be,
  contain nor lie inside any input path of the command.
* ``--force`` replaces only a folder that refbench itself made (it holds the marker); a folder with
  any other content is refused, never deleted.
* :class:`StagedDir` builds into a temporary sibling ``.<name>.refbench-tmp-<pid>`` and swaps it into
  place at the end; a killed build leaves only that temporary folder, which the next build of the
  same destination removes once its process is gone.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from refbench.core.errors import RefbenchError

MARKER = ".refbench-output.json"
TMP_TAG = ".refbench-tmp-"


def _resolved(p: str | os.PathLike) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(p))))


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def is_refbench_output(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder that refbench made (it holds the marker file)."""
    return (Path(path) / MARKER).is_file()


def mark_output(path: str | os.PathLike, kind: str, **info: object) -> None:
    """Write the marker into a folder refbench made (``kind``: dataset, eval-run, train-run, reproduce …)."""
    from refbench.core import __version__

    text = json.dumps({"made_by": "refbench", "version": __version__, "kind": kind, **info}, indent=1, default=str)
    (Path(path) / MARKER).write_text(text + "\n", encoding="utf-8")


def _writable_parent(path: Path, what: str) -> None:
    parent = path.parent
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise RefbenchError(f"{what} {path}: {parent} is a file, not a folder; choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RefbenchError(f"{what} {path}: cannot write in {parent} (permission denied); choose a writable path")


def check_output(path: str | os.PathLike, what: str = "--out", *, folder: bool = True,
                 inputs: Iterable[str | os.PathLike | None] = (), exist_ok: bool = True) -> Path:
    """Refuse, before any work, an output path refbench cannot or must not write; returns it resolved.

    Args:
        path: the output folder (``folder=True``) or file.
        what: how the user named it (``--out``, ``--json``), for the message.
        inputs: the command's input paths (data root, checkpoint, predictions …); the output may
            not be, contain or lie inside any of them.
        exist_ok: an existing output is allowed (the caller decides what to do with it).
    """
    out = _resolved(path)
    for inp in inputs:
        if inp is None or str(inp) == "":
            continue
        src = _resolved(inp)
        if _inside(out, src) or _inside(src, out):
            rel = "is" if out == src else ("lies inside" if _inside(out, src) else "contains")
            raise RefbenchError(f"{what} {out} {rel} the input {src}; write the output elsewhere")
    if out.exists():
        if folder and not out.is_dir():
            raise RefbenchError(f"{what} {out} is a file; give a folder path (it is created if missing)")
        if not folder and out.is_dir():
            raise RefbenchError(f"{what} {out} is a folder; give a file path")
        if not exist_ok:
            raise RefbenchError(f"{what} {out} already exists; choose a new path")
        target = out if folder else out.parent
        if not os.access(target, os.W_OK | os.X_OK):
            raise RefbenchError(f"{what} {out}: cannot write there (permission denied); choose a writable path")
        if not folder and not os.access(out, os.W_OK):
            raise RefbenchError(f"{what} {out}: the file is read-only; choose another path")
    else:
        _writable_parent(out, what)
    return out


def check_replaceable(path: str | os.PathLike, force: bool, what: str = "--out") -> None:
    """For commands that write a whole folder: an existing ``path`` needs ``force`` and refbench's marker.

    An empty folder counts as free.  A folder that refbench did not make is never replaced.
    """
    out = Path(path)
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not force:
        raise RefbenchError(f"{what} {out} already exists; pass --force to replace it or choose a new path")
    if not is_refbench_output(out):
        raise RefbenchError(f"{what} {out} holds files refbench did not make (no {MARKER}); refusing to replace it "
                            "even with --force: choose a new path or empty it yourself")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(out: str | os.PathLike) -> list[Path]:
    """Remove ``.<name>.refbench-tmp-<pid>*`` siblings of ``out`` whose process is gone; returns them."""
    out = _resolved(out)
    removed = []
    if not out.parent.is_dir():
        return removed
    prefix = f".{out.name}{TMP_TAG}"
    for cand in out.parent.iterdir():
        if not cand.name.startswith(prefix) or not cand.is_dir():
            continue
        pid_text = cand.name[len(prefix):].split(".", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(cand, ignore_errors=True)
            removed.append(cand)
    return removed


class StagedDir:
    """Build a folder beside its destination and swap it in when complete.

        with StagedDir(out, kind="dataset", force=force) as tmp:
            ...write everything into tmp...
        # now `out` holds it (with the marker); on an exception nothing at `out` changed

    ``force`` replaces an existing ``out`` only if refbench made it (:func:`check_replaceable`).
    """

    def __init__(self, out: str | os.PathLike, kind: str, force: bool = False, what: str = "--out",
                 **info: object) -> None:
        self.out = _resolved(out)
        self.kind, self.force, self.what, self.info = kind, force, what, info
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        check_replaceable(self.out, self.force, self.what)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.out)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}{TMP_TAG}{os.getpid()}.", dir=self.out.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        mark_output(self.tmp, self.kind, **self.info)
        old = None
        if self.out.exists():
            check_replaceable(self.out, self.force, self.what)  # re-checked: it may have changed meanwhile
            if self.out.is_dir() and not any(self.out.iterdir()):
                self.out.rmdir()
            else:
                old = self.out.with_name(f".{self.out.name}{TMP_TAG}{os.getpid()}.old")
                os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return False


def remove_stale_files(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Remove the temporaries refbench's atomic writers leave when killed mid-write, for the given
    output file names: ``.<name>.<random>.tmp``, ``.<name>.tmp`` and ``<name>.tmp``.  Returns them."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for name in names:
        for cand in (*folder.glob(f".{name}.*.tmp"), folder / f".{name}.tmp", folder / f"{name}.tmp"):
            if cand.is_file() and not cand.is_symlink():
                cand.unlink()
                removed.append(cand)
    return removed
