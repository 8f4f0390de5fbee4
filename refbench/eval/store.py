"""The run directory of ``refbench eval``: settings, per-sample records, results.

    OUT/run.json        settings of the run (checked on --resume)
    OUT/records.jsonl   one JSON line per sample, appended as batches finish
    OUT/results.json    the final results document (schema refbench.results v1)

While a run is in progress each batch is written as its record lines (with the batch index
``b``) followed by a marker line ``{"batch_done": b, "n": …}``, in one write, flushed and
fsynced.  A batch without its marker (the process was killed mid-write) is discarded on
``--resume`` and recomputed whole, with the same batch composition, so a resumed run gives
results identical to an uninterrupted one.  With N processes, process r writes
``records.rank{r}-of-{N}.jsonl``; at the end the merged, marker-free ``records.jsonl`` replaces
them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from refbench.core.errors import RefbenchError
from refbench.core.records import SampleRecords
from refbench.core.results import write_json_atomic, write_records_jsonl

# settings that must match for --resume to continue a run
RESUME_KEYS = ("model", "variant", "split_name", "checkpoint_sha256", "protocol_hash", "batch_size",
               "precision", "limit", "world_size", "input_size", "sample_count")


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
    def start(self, settings: dict, resume: bool,
              barrier: Callable[[], None] = lambda: None) -> tuple[SampleRecords, set[int], list[str]]:
        """Prepare OUT; returns (records already done by this rank, finished batch indices, notes).

        Every rank inspects OUT before any rank writes to it: ``barrier`` (the process group's, under
        torchrun) separates the checks from the writes, so rank 0's new run.json never looks like an old run.
        """
        notes: list[str] = []
        existing = self.run_json.exists() or self.records_jsonl.exists() or self.part_path(self.rank).exists()
        if existing and not resume:
            raise RefbenchError(f"{self.out} already holds a run; pass --resume to continue it or choose a new --out")
        if resume and self.results_json.exists() and self.rank == 0:
            notes.append("the run had finished; results are recomputed from its records")
        if resume and self.run_json.exists():
            try:
                old = json.loads(self.run_json.read_text())
            except json.JSONDecodeError:
                raise RefbenchError(f"{self.run_json} is corrupt; start a new --out") from None
            diff = [k for k in RESUME_KEYS if old.get(k) != settings.get(k)]
            if diff:
                k = diff[0]
                raise RefbenchError(f"cannot --resume {self.out}: setting {k!r} was {old.get(k)!r}, now "
                                    f"{settings.get(k)!r}; use the same settings or a new --out")
        barrier()
        self.out.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            write_json_atomic(self.run_json, settings)
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
        lines = path.read_text(encoding="utf-8").splitlines()
        rows, batches, bad_last = [], set(), False
        for n, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                if n == len(lines) - 1:
                    bad_last = True
                    break
                raise RefbenchError(f"{path}: line {n + 1} is corrupt (not the last line); start a new --out") from None
            if "batch_done" in d:
                batches.add(int(d["batch_done"]))
            else:
                rows.append(d)
        if not batches and rows and all("b" not in r for r in rows):
            return [{**r, "b": -1} for r in rows], {-1}, 0, bad_last
        kept = [r for r in rows if r.get("b") in batches]
        return kept, batches, len(rows) - len(kept), bad_last

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

    def finalize(self, records: SampleRecords, results: dict) -> None:
        """Write the merged clean records and the results document; remove per-rank parts."""
        self.close()
        write_records_jsonl(self.records_jsonl, records)
        if self.world > 1:
            for r in range(self.world):
                p = self.part_path(r)
                if p.exists():
                    p.unlink()
        write_json_atomic(self.results_json, results)
