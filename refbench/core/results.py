"""Results files: the JSON document every run writes, and per-sample JSONL records.

Schema ``refbench.results`` version 1 (keys; see README "Results files"):
    schema, schema_version, kind ("eval" | "score"), created, metrics {name: percent},
    ci {name: [low, high]}, ci_method, counts {total, zero, one, many}, protocol {…},
    protocol_hash, notes [...], environment {refbench, git_commit, torch, …},
    plus kind-specific provenance (model, variant, checkpoint_sha256, dataset, split,
    annotation_sha256, device, precision, wall_time_s, samples_per_s, pred_dir, gt …).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

from refbench.core.errors import RefbenchError
from refbench.core.records import SampleRecords

SCHEMA = "refbench.results"
SCHEMA_VERSION = 1


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Write JSON to ``path`` via a temporary file + rename, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_results(path: str | os.PathLike) -> dict:
    """Read a results JSON and check its schema; one clear error otherwise."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise RefbenchError(f"{path}: no such results file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RefbenchError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise RefbenchError(f"{path}: not a refbench results file (missing schema {SCHEMA!r})")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise RefbenchError(f"{path}: results schema version {doc.get('schema_version')!r} is not supported "
                            f"(this refbench reads version {SCHEMA_VERSION}); re-run the evaluation or upgrade refbench")
    if not isinstance(doc.get("metrics"), dict):
        raise RefbenchError(f"{path}: results file has no 'metrics' object")
    return doc


def write_records_jsonl(path: str | os.PathLike, records: SampleRecords) -> None:
    """Write all records at once (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(records.to_jsonl())
    os.replace(tmp, path)


def read_records_jsonl(path: str | os.PathLike, recover: bool = False) -> tuple[SampleRecords, int]:
    """Records from a JSONL file and the number of unreadable trailing lines dropped.

    With ``recover=True`` an incomplete or corrupt *last* line (a run killed mid-write) is
    dropped and counted; corruption anywhere else is always an error.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise RefbenchError(f"{path}: no such records file") from None
    rows: list[dict] = []
    dropped = 0
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if recover and n == len(lines) - 1:
                dropped = 1
                break
            raise RefbenchError(f"{path}: line {n + 1} is not valid JSON; the records file is corrupt") from None
        if isinstance(row, dict) and "batch_done" in row:  # progress marker of a running eval
            continue
        rows.append(row)
    return SampleRecords.from_dicts(rows, str(path)), dropped


def iter_jsonl_lines(records: SampleRecords) -> Iterable[str]:
    for d in records.iter_dicts():
        yield json.dumps(d) + "\n"


def results_document(report, kind: str, ci: dict | None = None, ci_method: str | None = None, **provenance) -> dict:
    """The results JSON for a MetricReport (see module docstring for the keys)."""
    from refbench.core.provenance import environment, now_iso

    doc = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": kind, "created": now_iso()}
    doc.update(provenance)
    doc.update({"metrics": report.metrics, "counts": report.counts, "protocol": report.protocol,
                "protocol_hash": report.protocol_hash, "notes": report.notes})
    if ci is not None:
        doc["ci"] = {k: v.to_list() for k, v in ci.items()}
        doc["ci_method"] = ci_method
    doc["environment"] = environment()
    return doc
