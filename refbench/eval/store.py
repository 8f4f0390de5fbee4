"""The run directory of ``refbench eval``: identity, per-sample records, results.

    OUT/.refbench-output.json   marker: this folder is a refbench eval run
    OUT/run.json                the run's identity (checked field by field on --resume)
    OUT/records.jsonl           one JSON line per sample, appended as batches finish
    OUT/results.json            the final results document (schema refbench.results v2)

While a run is in progress each batch is written as its record lines (with the batch index
``b``) followed by a marker line ``{"batch_done": b, "n": …}``, in one write, flushed and
fsynced.  A batch without its marker (the process was killed mid-write) is discarded on
``--resume`` and recomputed whole, with the same batch composition, so a resumed run gives
results identical to an uninterrupted one.  With N processes, process r writes
``records.rank{r}-of-{N}.jsonl``; at the end the merged, marker-free ``records.jsonl`` replaces
them.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable

from refbench.core.errors import RefbenchError
from refbench.core.outdir import MARKER, is_refbench_output, mark_output, remove_stale_files
from refbench.core.records import SampleRecords, read_jsonl
from refbench.core.results import ResultsDoc, RunIdentity, first_difference, write_json_atomic, write_records_jsonl

RUN_SCHEMA = "refbench.eval-run"


class RunStore:
    def __init__(self, out: str | os.PathLike, rank: int = 0, world: int = 1) -> None:
        self.out = Path(out)
        self.rank, self.world = rank, world
        self.run_json = self.out / "run.json"
        self.results_json = self.out / "results.json"
        self.records_jsonl = self.out / "records.jsonl"
        self._fh = None

    def part_path(self, rank: int) -> Path:
        return self.records_jsonl if self.world == 1 else self.out / f"records.rank{rank}-of-{self.world}.jsonl"

    # ---- start / resume -------------------------------------------------------------------
    def check(self, resume: bool) -> None:
        """Refuse, before any work, an --out this run must not write (called by every rank)."""
        if not self.out.exists():
            return
        if not self.out.is_dir():
            raise RefbenchError(f"--out {self.out} is a file; give a folder for the run")
        if not any(p.name != MARKER for p in self.out.iterdir()):
            if resume:
                raise RefbenchError(f"--resume: {self.out} holds no run to continue; start without --resume")
            return
        if not is_refbench_output(self.out) and not self.run_json.exists():
            raise RefbenchError(f"--out {self.out} holds files that are not a refbench eval run (no {MARKER}); "
                                "choose a new --out")
        if not resume:
            raise RefbenchError(f"{self.out} already holds a run; pass --resume to continue it or choose a new --out")
        if not self.run_json.exists():
            raise RefbenchError(f"--resume: {self.run_json} is missing; the folder is not a resumable run, "
                                "choose a new --out")

    def saved_identity(self) -> RunIdentity | None:
        """The identity in run.json (None if there is none)."""
        if not self.run_json.exists():
            return None
        try:
            doc = json.loads(self.run_json.read_text(encoding="utf-8"))
            ident = doc["identity"] if doc.get("schema") == RUN_SCHEMA else _identity_from_v1(doc)
            ident = {**ident, "annotation_sha256": dict(ident.get("annotation_sha256") or {})}
            return RunIdentity(**ident)
        except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise RefbenchError(f"{self.run_json} is corrupt; start a new --out") from None

    def mismatch(self, identity: RunIdentity) -> str | None:
        """How the saved run's identity differs from ``identity`` (None: same run, or none saved)."""
        old = self.saved_identity()
        return None if old is None else first_difference(old, identity)

    def clear(self) -> None:
        """Remove this refbench run's files (run.json, records, results) to start over; nothing else."""
        if not is_refbench_output(self.out) and not self.run_json.exists():
            raise RefbenchError(f"{self.out} is not a refbench eval run; refusing to clear it")
        for p in [self.run_json, self.results_json, self.records_jsonl, *self.out.glob("records.rank*-of-*.jsonl")]:
            if p.exists():
                p.unlink()

    def start(self, identity: RunIdentity, resume: bool,
              barrier: Callable[[], None] = lambda: None) -> tuple[SampleRecords, set[int], list[str]]:
        """Prepare OUT; returns (records already done by this rank, finished batch indices, notes).

        On ``resume`` the saved identity must equal this run's in every field, else one error line
        names the first field that differs.  Every rank inspects OUT before any rank writes to it:
        ``barrier`` (the process group's, under torchrun) separates the checks from the writes.
        """
        notes: list[str] = []
        self.check(resume)
        if resume:
            old = self.saved_identity()
            if old is not None:
                why = first_difference(old, identity)
                if why is not None:
                    raise RefbenchError(f"cannot --resume {self.out}: {why}; use the same settings and data, or a "
                                        "new --out")
            if self.results_json.exists() and self.rank == 0:
                notes.append("the run had finished; results are recomputed from its records")
        barrier()
        self.out.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            parts = [p.name for p in self.out.glob("records.rank*-of-*.jsonl")]
            remove_stale_files(self.out, ["run.json", "results.json", "records.jsonl", *parts])
            if not is_refbench_output(self.out):
                mark_output(self.out, "eval-run")
            write_json_atomic(self.run_json, {"schema": RUN_SCHEMA, "schema_version": 1,
                                              "identity": dataclasses.asdict(identity)})
        done, batches = SampleRecords.empty(), set()
        path = self.part_path(self.rank)
        if resume and path.exists():
            rows, batches, n_partial, bad_line = self._read_progress(path)
            if bad_line:
                notes.append(f"{path.name}: dropped a corrupt last line (run was killed mid-write)")
            if n_partial:
                notes.append(f"{path.name}: {n_partial} record(s) of an unfinished batch will be recomputed")
            self._rewrite(path, rows, batches)
            done = SampleRecords.from_dicts(rows, str(path))
            if len(done):
                notes.append(f"resumed: {len(done)} sample(s) already scored were kept")
        elif resume and self.world > 1 and self.records_jsonl.exists():
            raise RefbenchError(f"{self.out}: a finished single-process run cannot be resumed with "
                                f"{self.world} processes; use a new --out")
        self._fh = open(path, "a", encoding="utf-8")
        return done, batches, notes

    @staticmethod
    def _read_progress(path: Path) -> tuple[list[dict], set[int], int, bool]:
        """(record rows of finished batches, finished batch indices, #dropped rows, corrupt last line?).

        A finished run's clean records file (no batch markers) counts as one finished batch -1.
        """
        lines, dropped = read_jsonl(path, recover_last=True, what="records file")
        rows, batches = [], set()
        for d in lines:
            if isinstance(d, dict) and "batch_done" in d:
                batches.add(int(d["batch_done"]))
            else:
                rows.append(d)
        if not batches and rows and all("b" not in r for r in rows):
            return [{**r, "b": -1} for r in rows], {-1}, 0, bool(dropped)
        kept = [r for r in rows if r.get("b") in batches]
        return kept, batches, len(rows) - len(kept), bool(dropped)

    @staticmethod
    def _rewrite(path: Path, rows: list[dict], batches: set[int]) -> None:
        """Rewrite the part file with only the finished batches (atomically)."""
        by_batch: dict[int, list[dict]] = {b: [] for b in batches}
        for r in rows:
            by_batch[r["b"]].append(r)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for b in sorted(by_batch):
                for r in by_batch[b]:
                    f.write(json.dumps(r) + "\n")
                f.write(json.dumps({"batch_done": b, "n": len(by_batch[b])}) + "\n")
        os.replace(tmp, path)

    # ---- progress ---------------------------------------------------------------------------
    def append_batch(self, batch_index: int, rec: SampleRecords) -> None:
        """Write one finished batch (records + marker) in one write; flushed and fsynced."""
        lines = [json.dumps({**d, "b": batch_index}) for d in rec.iter_dicts()]
        lines.append(json.dumps({"batch_done": batch_index, "n": len(rec)}))
        self._fh.write("\n".join(lines) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def finalize(self, records: SampleRecords, results: ResultsDoc) -> None:
        """Write the merged clean records and the results document; remove per-rank parts."""
        self.close()
        write_records_jsonl(self.records_jsonl, records)
        if self.world > 1:
            for r in range(self.world):
                p = self.part_path(r)
                if p.exists():
                    p.unlink()
        results.write(self.results_json)


def _identity_from_v1(doc: dict) -> dict:
    """run.json of refbench 0.1 (flat settings) -> identity fields; unknown ones differ on resume."""
    return {"model": doc.get("model"), "variant": doc.get("variant"),
            "checkpoint_sha256": doc.get("checkpoint_sha256"), "protocol_hash": doc.get("protocol_hash"),
            "limit": doc.get("limit"), "precision": doc.get("precision"), "batch_size": doc.get("batch_size"),
            "world_size": doc.get("world_size"), "input_size": doc.get("input_size"),
            "n_samples": doc.get("sample_count") or 0}
