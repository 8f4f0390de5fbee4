"""Where the files are: the directory layouts the official repositories use.

Annotations: ``<root>/<dataset dir>/{instances.json, refs file}`` with ``<root>`` the data
root itself or its ``refer/data``, ``data`` or ``datasets`` sub-directory (LAVT / DMMI
keep ``refer/data/``, ReLA keeps ``datasets/``).  Images: the first of
``images/mscoco/images/<set>`` (LAVT, DMMI), ``images/mscoco/<set>``, ``images/<set>``
(ReLA), ``coco/images/<set>``, ``coco/<set>``, ``<set>`` found under the same roots, or
an explicit ``image_root`` (holding ``<set>/`` or the files themselves).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from refbench.data.catalog import DatasetDef
from refbench.core.errors import RefbenchError

ROOT_PREFIXES = ("", "refer/data", "data", "datasets")
IMAGE_BASES = ("images/mscoco/images", "images/mscoco", "images", "coco/images", "coco", "")


def resolve_data_root(data_root: str | os.PathLike | None) -> Path | None:
    """The data root: the argument, else ``$REFBENCH_DATA``, else None."""
    if data_root is not None and str(data_root) != "":
        return Path(data_root).expanduser()
    env = os.environ.get("REFBENCH_DATA")
    return Path(env).expanduser() if env else None


@dataclass(frozen=True)
class DatasetFiles:
    """The located annotation files of a dataset: its directory, refs file and instances.json."""

    directory: Path
    refs: Path
    instances: Path


def _candidates(root: Path, d: DatasetDef) -> list[Path]:
    return [root / prefix / name if prefix else root / name for prefix in ROOT_PREFIXES for name in d.dir_names]


def find_dataset_files(root: Path, d: DatasetDef) -> DatasetFiles | None:
    """The first candidate directory holding one of the dataset's refs files, or None."""
    for directory in _candidates(root, d):
        for refs_name in d.refs_files:
            refs = directory / refs_name
            if refs.is_file():
                return DatasetFiles(directory, refs, directory / "instances.json")
    return None


def expected_layout(root: Path | str, d: DatasetDef) -> str:
    return d.layout.format(root=root, dir=d.dir_names[0], refs=d.refs_files[0])


def locate_dataset(root: Path | None, d: DatasetDef) -> DatasetFiles:
    """Find the dataset's files under ``root``; one clear error naming the expected layout."""
    if root is None:
        raise RefbenchError(f"no data root for dataset {d.key!r}: pass --data-root DIR or set REFBENCH_DATA; "
                            f"expected {expected_layout('DIR', d)}")
    if not root.is_dir():
        raise RefbenchError(f"data root {root} does not exist; expected {expected_layout(root, d)}")
    files = find_dataset_files(root, d)
    if files is None:
        raise RefbenchError(f"dataset {d.key!r} not found under {root}: expected {expected_layout(root, d)}")
    if not files.instances.is_file():
        raise RefbenchError(f"{files.instances}: file not found; every dataset directory holds its own instances.json "
                            f"next to {files.refs.name} (expected {expected_layout(root, d)})")
    return files


class ImageLocator:
    """Maps an image file name to its path, over one or more image-set directories.

    With a merged ``trainval2014`` every name resolves there; with separate ``train2014`` /
    ``val2014`` the directory whose name occurs in the file name wins (COCO file names
    carry it: ``COCO_val2014_000000000042.jpg``).
    """

    def __init__(self, dirs: dict[str, Path], fallback: Path) -> None:
        self.dirs = dirs
        self.fallback = fallback

    @property
    def found(self) -> bool:
        return bool(self.dirs)

    def path(self, file_name: str) -> Path:
        if len(self.dirs) == 1:
            return next(iter(self.dirs.values())) / file_name
        for name, directory in self.dirs.items():
            if name in file_name:
                return directory / file_name
        if self.dirs:
            return next(iter(self.dirs.values())) / file_name
        return self.fallback / file_name

    def describe(self) -> str:
        if not self.dirs:
            return f"no image directory found (expected e.g. {self.fallback})"
        return ", ".join(str(p) for p in self.dirs.values())


def find_images(root: Path | None, d: DatasetDef, dataset_dir: Path | None = None,
                image_root: str | os.PathLike | None = None) -> ImageLocator:
    """Locate the image directories of ``d`` (see module doc); ``trainval2014`` beats the split sets."""
    sets = d.image_sets
    dirs: dict[str, Path] = {}
    if image_root is not None:
        ir = Path(image_root).expanduser()
        for s in sets:
            if (ir / s).is_dir():
                dirs[s] = ir / s
        if not dirs:
            if not ir.is_dir():
                raise RefbenchError(f"--image-root {ir} does not exist")
            dirs[sets[0]] = ir
    else:
        roots = [r for r in ([root] if root else []) + ([dataset_dir.parent] if dataset_dir else []) if r]
        bases = [r / prefix / base for r in roots for prefix in ROOT_PREFIXES for base in IMAGE_BASES]
        for s in sets:
            for b in bases:
                if (b / s).is_dir():
                    dirs[s] = b / s
                    break
    if "trainval2014" in dirs:
        dirs = {"trainval2014": dirs["trainval2014"]}
    fallback = (root or Path(".")) / "images" / "mscoco" / "images" / sets[0] if not d.synthetic else \
        (root or Path(".")) / "images" / "synth"
    return ImageLocator(dirs, fallback)
