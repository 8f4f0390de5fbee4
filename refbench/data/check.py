"""``refbench data check`` / ``data stats``: what is on disk, and does it match the papers.

check: for every dataset of the catalog found under the data root, load its files (a
malformed file is reported, not fatal), count refs and sentences per split and compare
them with the published counts (synthetic datasets: with their manifest.json), and count
missing image files.  stats: per split, sentences by type (zero / one / many), expression
length (words; BERT word-pieces and the share that loses [SEP] at 20 tokens), and the
most frequent target categories.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from refbench.data.catalog import DATASETS, DatasetDef
from refbench.data.coco import load_instances, read_json
from refbench.data.layout import expected_layout, find_dataset_files, find_images
from refbench.data.refer import select_split, to_samples
from refbench.data.sample import TYPES
from refbench.data.split_data import SplitData, read_refs, synth_manifest_counts
from refbench.core.errors import RefbenchError


@dataclass
class SplitCheck:
    """Counts of one split against the expected ones: published for real datasets, the
    manifest's for synthetic ones (None = nothing known)."""

    name: str
    refs: int
    sentences: int
    types: dict[str, int]
    images: int
    missing_images: int
    expected_refs: int | None
    expected_sentences: int | None
    missing_examples: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        out = []
        if self.expected_refs is not None and self.refs != self.expected_refs:
            out.append(f"{self.name}: {self.refs} refs, expected {self.expected_refs}")
        if self.expected_sentences is not None and self.sentences != self.expected_sentences:
            out.append(f"{self.name}: {self.sentences} sentences, expected {self.expected_sentences}")
        if self.missing_images:
            out.append(f"{self.name}: {self.missing_images} of {self.images} images missing, e.g. {self.missing_examples[0]}")
        return out


@dataclass
class DatasetCheck:
    """Result of checking one dataset: where its files are and what is wrong."""

    key: str
    title: str
    found: bool
    directory: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    image_dirs: str = ""
    splits: list[SplitCheck] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    manifest: str | None = None

    @property
    def problems(self) -> list[str]:
        return self.errors + [p for s in self.splits for p in s.problems]


def _split_names(d: DatasetDef) -> list[str]:
    # REFER's "test" of refcoco(+)/synth is testA ∪ testB: not a file split of its own.
    return [s for s in d.splits if not (s == "test" and "testA" in d.splits)]


def verify_manifest(root: Path) -> str:
    """Compare every file listed in a synthetic benchmark's manifest.json with its sha256."""
    from refbench.core.provenance import sha256_file

    doc = read_json(root / "manifest.json")
    bad = [rel for rel, digest in doc.get("files", {}).items()
           if not (root / rel).is_file() or sha256_file(root / rel) != digest]
    if bad:
        raise RefbenchError(f"{len(bad)} file(s) differ from {root / 'manifest.json'}, e.g. {bad[0]}; rebuild with "
                            f"refbench build-dataset synth --force")
    return f"all {len(doc.get('files', {}))} files match manifest.json"


def check_dataset(root: Path, d: DatasetDef, image_root: str | os.PathLike | None = None,
                  check_images: bool = True, manifest_verdict: str | None = None) -> DatasetCheck:
    """Locate, load and count one dataset (errors are collected, not raised).

    manifest_verdict: result of :func:`verify_manifest` for synthetic datasets (shared by
    the three synth datasets of one root), shown in the report."""
    files = find_dataset_files(root, d)
    if files is None:
        return DatasetCheck(d.key, d.title, False, files={"expected": expected_layout(root, d)})
    out = DatasetCheck(d.key, d.title, True, str(files.directory),
                       {"refs": str(files.refs), "instances": str(files.instances)})
    if d.synthetic and manifest_verdict:
        out.manifest = manifest_verdict
        if not manifest_verdict.startswith("all "):
            out.errors.append(manifest_verdict)
    try:
        coco = load_instances(files.instances)
        refs = read_refs(d, files.refs, coco)
        images = find_images(root, d, files.directory, image_root)
    except RefbenchError as e:
        out.errors.append(str(e))
        return out
    out.image_dirs = images.describe()
    bad = coco.bad_anns(coco.anns)  # every annotation, referenced or not, in bulk
    if bad:
        shown = "; ".join(msg for _, msg in bad[:3])
        out.errors.append(f"{len(bad)} annotation(s) of {files.instances} cannot be rasterized: {shown}"
                          + (f"; ... ({len(bad) - 3} more)" if len(bad) > 3 else ""))
    manifest = synth_manifest_counts(root, d.key) if d.synthetic else None
    for split in _split_names(d):
        selected = select_split(refs, split)
        try:
            samples = to_samples(selected, coco, split, str(files.refs), check_segmentations=False)
        except RefbenchError as e:
            out.errors.append(str(e))
            continue
        types = Counter(s.type for s in samples)
        file_names = sorted({s.image_file for s in samples})
        missing = [str(images.path(f)) for f in file_names if not images.path(f).is_file()] if check_images else []
        if manifest is not None:
            exp_refs = manifest.get(split, {}).get("refs")
            exp_sents = manifest.get(split, {}).get("sentences")
        else:
            exp_refs, exp_sents = d.refs.get(split), d.sentences.get(split)
        out.splits.append(SplitCheck(f"{d.key}/{split}", len(selected), len(samples), {t: types.get(t, 0) for t in TYPES},
                                     len(file_names), len(missing), exp_refs, exp_sents, missing[:3]))
    return out


def check_data_root(root: Path, datasets: list[str] | None = None, image_root: str | os.PathLike | None = None,
                    check_images: bool = True, verify_hashes: bool = False) -> list[DatasetCheck]:
    """Check every catalog dataset (or the named ones) under ``root``."""
    if not root.is_dir():
        raise RefbenchError(f"data root {root} does not exist; pass --data-root DIR or set REFBENCH_DATA")
    keys = datasets or list(DATASETS)
    verdict = None
    if verify_hashes and (root / "manifest.json").is_file():
        try:
            verdict = verify_manifest(root)
        except RefbenchError as e:
            verdict = str(e)
    return [check_dataset(root, DATASETS[k], image_root, check_images, verdict) for k in keys]


def format_check(results: list[DatasetCheck], explain_missing: bool = False) -> str:
    """Human-readable report: one block per dataset found, one line per split; datasets not
    found get one line (with the expected layout if ``explain_missing`` or none was found)."""
    lines = []
    explain = explain_missing or not any(r.found for r in results)
    for r in results:
        if not r.found:
            lines.append(f"- {r.key:16s} not found" + (f" (expected {r.files['expected']})" if explain else ""))
            continue
        lines.append(f"+ {r.key:16s} {r.title}: {r.directory}")
        lines.append(f"    refs file: {r.files['refs']}")
        if r.image_dirs:
            lines.append(f"    images:    {r.image_dirs}")
        if r.manifest:
            lines.append(f"    manifest:  {r.manifest}")
        for e in r.errors:
            lines.append(f"    ERROR {e}")
        for s in r.splits:
            def cmp(n: int, e: int | None) -> str:
                return f"{n}" if e is None else (f"{n} (ok)" if n == e else f"{n} (expected {e}: MISMATCH)")
            types = " ".join(f"{t}={s.types[t]}" for t in TYPES if s.types[t])
            miss = f", {s.missing_images}/{s.images} images MISSING" if s.missing_images else f", {s.images} images"
            lines.append(f"    {s.name:26s} refs {cmp(s.refs, s.expected_refs):>22s}  sentences "
                         f"{cmp(s.sentences, s.expected_sentences):>22s}  [{types}]{miss}")
    found = [r for r in results if r.found]
    problems = [p for r in found for p in r.problems]
    if not found:
        lines.append("no dataset found")
    lines.append(f"{len(found)} dataset(s) found, {len(problems)} problem(s)")
    return "\n".join(lines)


def check_to_json(results: list[DatasetCheck]) -> list[dict]:
    out = []
    for r in results:
        d = asdict(r)
        d["problems"] = r.problems
        out.append(d)
    return out


def split_stats(split: SplitData, tokenizer=None, top_categories: int = 10) -> dict:
    """Counts by type, expression length and category histogram of one split (JSON-ready)."""
    samples = split.samples
    words = np.array([len(s.sentence.split()) for s in samples], np.int64)
    stats: dict = {"split": split.name, "refs": len(split.refs), "sentences": len(samples),
                   "images": len({s.image_id for s in samples}), "types": {t: 0 for t in TYPES},
                   "expected_sentences": split.expected_sentences, "expected_refs": split.expected_refs}
    for s in samples:
        stats["types"][s.type] += 1
    if len(samples):
        stats["words"] = {"mean": round(float(words.mean()), 2), "median": float(np.median(words)),
                          "p95": float(np.percentile(words, 95)), "max": int(words.max())}
        if tokenizer is not None:
            ids, att = tokenizer.encode_batch([s.sentence for s in samples])
            n_tok = np.array([sum(a) for a in att])
            lost_sep = np.array([a[-1] == 1 and i[-1] != 102 for i, a in zip(ids, att)])
            stats["tokens"] = {"length": tokenizer.length, "mean_real_tokens": round(float(n_tok.mean()), 2),
                               "truncated_share": round(float(lost_sep.mean()) * 100, 2)}
    cats: Counter = Counter()  # sentences whose targets include each category
    for s in samples:
        for c in set(s.category_ids):
            cats[split.coco.category_name(c)] += 1
    stats["categories"] = dict(cats.most_common(top_categories))
    stats["n_categories"] = len(cats)
    return stats


def format_stats(st: dict) -> str:
    lines = [f"{st['split']}: {st['sentences']} sentences, {st['refs']} refs, {st['images']} images"]
    exp = st.get("expected_sentences")
    if exp is not None:
        lines[0] += f" (expected {exp}: {'ok' if exp == st['sentences'] else 'MISMATCH'})"
    t = st["types"]
    lines.append(f"  types: zero {t['zero']}, one {t['one']}, many {t['many']}")
    if "words" in st:
        w = st["words"]
        lines.append(f"  words per sentence: mean {w['mean']}, median {w['median']:g}, p95 {w['p95']:g}, max {w['max']}")
    if "tokens" in st:
        k = st["tokens"]
        lines.append(f"  BERT tokens (of {k['length']}): mean {k['mean_real_tokens']} real, "
                     f"{k['truncated_share']}% truncated (lose [SEP])")
    if st["categories"]:
        top = ", ".join(f"{n} {c}" for n, c in st["categories"].items())
        lines.append(f"  categories ({st['n_categories']}): {top}")
    return "\n".join(lines)
