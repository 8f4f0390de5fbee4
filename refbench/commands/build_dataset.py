"""``refbench build-dataset``: dataset builders (``synth``, ``ref-zom``)."""
from __future__ import annotations

from pathlib import Path

import click


@click.group("build-dataset")
def build_dataset() -> None:
    """Build datasets in the REFER / Ref-ZOM / gRefCOCO formats."""


@build_dataset.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output data root (must not exist, or --force).")
@click.option("--seed", default=0, show_default=True, help="Random seed; the same seed gives byte-identical files.")
@click.option("--size", type=click.Choice(["tiny", "small", "full"]), default="small", show_default=True,
              help="tiny: 40 images (tests), small: 800 (default benchmark), full: 7200.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Rendering processes (default: up to 2; output is identical).")
@click.option("--layout", type=click.Choice(["refbench", "official"]), default="refbench", show_default=True,
              help="Folder names: refbench's (synth/, synth-zom/, synth-grefcoco/) or the ones the official "
                   "loaders accept (refcoco/ for REFER/LAVT/MagNet/DMMI, ref-zom/ for DMMI, grefcoco/ for ReLA, "
                   "images under images/mscoco/images/train2014).")
@click.option("--force", is_flag=True, help="Replace --out if refbench built it (a folder with other files is never "
                                            "replaced).")
def synth(out: Path, seed: int, size: str, workers: int | None, layout: str, force: bool) -> None:
    """The synthetic RIS benchmark: shapes with attributes, positions, relations; one, many and
    no-target sentences; written as REFER, Ref-ZOM and gRefCOCO datasets with a sha256 manifest.

    \b
    Examples:
      refbench build-dataset synth --out data/synth --size small
      refbench build-dataset synth --out refer/data --layout official   # for the official code as it is
    """
    from refbench.build.synth import LAYOUTS, build_synth

    manifest = build_synth(out, seed=seed, size=size, workers=workers, force=force, echo=click.echo, layout=layout)
    dirs = LAYOUTS[layout].dirs
    for dataset, splits in manifest["counts"].items():
        parts = []
        for split, c in splits.items():
            types = "/".join(str(c[t]) for t in ("zero", "one", "many"))
            parts.append(f"{split} {c['images']} img {c['refs']} refs {c['sentences']} sent ({types})")
        click.echo(f"  {dirs[dataset]:15s} " + "; ".join(parts))
    click.echo(f"  sentences by type are (zero/one/many); manifest: {out / 'manifest.json'}")
    if layout == "official":
        click.echo(f"  official loaders: REFER('{out}', 'refcoco', 'unc') (LAVT, MagNet, DMMI), DMMI REFER('{out}', "
                   f"'ref-zom', 'final'), ReLA G_REFER('{out}', 'grefcoco', 'unc'); refbench reads it as "
                   f"refcoco/<split>, ref-zom/<split>, grefcoco/<split>")
    else:
        click.echo(f"  use it: refbench data check --data-root {out}   (or REFBENCH_DATA={out})")


@build_dataset.command("ref-zom")
@click.option("--coco-instances", required=True, multiple=True, type=click.Path(path_type=Path),
              help="COCO instances JSON (repeatable, merged: instances_train2014.json and instances_val2014.json; or "
                   "the synthetic annotations/instances_synth.json).")
@click.option("--coco-captions", required=True, multiple=True, type=click.Path(path_type=Path),
              help="COCO captions JSON for the same images (repeatable: captions_train2014.json, captions_val2014.json).")
@click.option("--refer-root", required=True, type=click.Path(path_type=Path),
              help="Folder holding REFER refs pickles: refcoco/refs(unc).p, refcoco+/refs(unc).p, refcocog/refs(umd).p "
                   "... (LAVT's refer/data/), or a synthetic benchmark root.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output data root (must not exist, or --force).")
@click.option("--seed", default=0, show_default=True, help="Random seed; the same inputs and seed give byte-identical files.")
@click.option("--max-images", type=int, default=None,
              help="Images in the output, zero + target (default: the paper's 55,078; 0 = every usable image).")
@click.option("--test-fraction", type=float, default=None,
              help="Share of images in test (default: the paper's 11,329/55,078 = 0.2057).")
@click.option("--zero-fraction", type=float, default=None,
              help="Share of images that are one-to-zero images (default: the paper's 11,937/55,078 = 0.2167; 0 = none).")
@click.option("--many-object-ratio", type=float, default=None,
              help="One-to-many targets per one-to-one target (default: the paper's 41,842/42,421 = 0.986).")
@click.option("--zero-pool", type=click.Choice(["outside-refer", "unused"]), default="outside-refer", show_default=True,
              help="Where one-to-zero images come from: images in no given REFER file (the paper's rule), or any image "
                   "not used for one/many refs.")
@click.option("--image-dir", "image_dirs", multiple=True, type=click.Path(path_type=Path),
              help="Source image folder to symlink into OUT/images/mscoco/images/ (repeatable: train2014 and val2014). "
                   "Images are never copied; without it, evaluate with --image-root.")
@click.option("--lexicon", "lexicon_file", type=click.Path(path_type=Path),
              help='Extra category words, JSON {name: {"singular": [...], "plural": [...], "mentions": [...]}}.')
@click.option("--lexicon-fallback", is_flag=True,
              help="Categories without a lexicon entry use their own name and its regular plural (listed in stats.json).")
@click.option("--force", is_flag=True, help="Replace --out if refbench built it (a folder with other files is never "
                                            "replaced).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars on stderr.")
def ref_zom(coco_instances: tuple[Path, ...], coco_captions: tuple[Path, ...], refer_root: Path, out: Path, seed: int, max_images: int | None,
            test_fraction: float | None, zero_fraction: float | None, many_object_ratio: float | None, zero_pool: str,
            image_dirs: tuple[Path, ...], lexicon_file: Path | None, lexicon_fallback: bool, force: bool,
            progress: bool) -> None:
    """A Ref-ZOM-style dataset (one-to-zero, one-to-one, one-to-many sentences; DMMI, ICCV 2023)
    from COCO instances, COCO captions and REFER refs, in the released Ref-ZOM format
    (OUT/ref-zom/refs(final).p + instances.json), with stats.json and a sha256 manifest.

    \b
    Example:
      refbench build-dataset ref-zom --coco-instances annotations/instances_train2014.json \\
          --coco-instances annotations/instances_val2014.json \\
          --coco-captions annotations/captions_train2014.json \\
          --coco-captions annotations/captions_val2014.json --refer-root refer/data \\
          --image-dir images/train2014 --image-dir images/val2014 --out data/refzom-built
    """
    import dataclasses

    from refbench.build.refzom import RefZomConfig, build_refzom

    given = {"seed": seed, "test_fraction": test_fraction, "zero_fraction": zero_fraction,
             "many_object_ratio": many_object_ratio, "zero_pool": zero_pool}
    cfg = dataclasses.replace(RefZomConfig(), **{k: v for k, v in given.items() if v is not None})
    if max_images is not None:
        cfg = dataclasses.replace(cfg, max_images=max_images or None)
    manifest = build_refzom(list(coco_instances), list(coco_captions), refer_root, out, cfg, image_dirs=image_dirs,
                            lexicon_file=lexicon_file, lexicon_fallback=lexicon_fallback, force=force,
                            progress=progress, echo=click.echo)
    for split, c in manifest["counts"].items():
        refs = "/".join(str(c["refs"][t]) for t in ("zero", "one", "many"))
        sents = "/".join(str(c["sentences"][t]) for t in ("zero", "one", "many"))
        click.echo(f"  {split:5s} {c['images']} images, refs {refs}, sentences {sents} (zero/one/many)")
    click.echo(f"  statistics (vs the published Ref-ZOM numbers, zero-target check counts): {out / 'stats.json'}")
    click.echo(f"  use it: refbench data stats ref-zom/test --data-root {out}")
