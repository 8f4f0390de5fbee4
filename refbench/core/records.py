"""Per-sample records: the whole metric state.

One record per evaluated sentence: sample id, intersection I and union U (pixels on the
protocol's canvas), predicted and GT areas, target type (zero/one/many) and, when the
model has a no-target head, its decision.  Every reported number is a function of these
records, so two record sets merge exactly (concatenation), resume after a crash is a
matter of re-reading them, and bootstrap / paired tests resample them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from refbench.core.errors import RefbenchError

TYPES = ("zero", "one", "many")
_TYPE_CODE = {t: i for i, t in enumerate(TYPES)}


def type_codes(types: Iterable[str], what: str = "sample type") -> np.ndarray:
    """int8 codes (0 zero, 1 one, 2 many) for type names; a clear error for anything else."""
    out = []
    for t in types:
        code = _TYPE_CODE.get(t)
        if code is None:
            raise RefbenchError(f"{what} {t!r} is not one of zero/one/many")
        out.append(code)
    return np.asarray(out, dtype=np.int8)


@dataclass
class SampleRecords:
    """Column store of per-sample records (all arrays have the same length n).

    ids: sample ids (str); I, U, pred_area, gt_area: int64 pixel counts;
    type: int8 code into TYPES; pred_nt: int8, 1/0 = model's no-target flag, -1 = none given.
    """

    ids: list[str]
    I: np.ndarray
    U: np.ndarray
    pred_area: np.ndarray
    gt_area: np.ndarray
    type: np.ndarray
    pred_nt: np.ndarray

    @classmethod
    def empty(cls) -> "SampleRecords":
        z = np.zeros(0, np.int64)
        return cls([], z, z.copy(), z.copy(), z.copy(), np.zeros(0, np.int8), np.zeros(0, np.int8))

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def concat(cls, parts: Sequence["SampleRecords"]) -> "SampleRecords":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        ids: list[str] = []
        for p in parts:
            ids.extend(p.ids)
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        return cls(ids, cat("I"), cat("U"), cat("pred_area"), cat("gt_area"), cat("type"), cat("pred_nt"))

    def take(self, index: np.ndarray) -> "SampleRecords":
        """Records at the given positions (in that order)."""
        index = np.asarray(index, dtype=np.int64)
        return SampleRecords([self.ids[i] for i in index], self.I[index], self.U[index],
                             self.pred_area[index], self.gt_area[index], self.type[index], self.pred_nt[index])

    def sorted_by_id(self) -> "SampleRecords":
        return self.take(np.argsort(np.asarray(self.ids, dtype=object), kind="stable"))

    def check_unique(self) -> None:
        if len(set(self.ids)) != len(self.ids):
            seen: set[str] = set()
            dup = next(i for i in self.ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
            raise RefbenchError(f"sample id {dup!r} was scored twice; every sample must be scored once")

    def iou(self) -> np.ndarray:
        """Per-sample IoU = I/U in float64, 0 where U == 0 (the LAVT rule)."""
        U = self.U.astype(np.float64)
        return np.divide(self.I.astype(np.float64), U, out=np.zeros_like(U), where=U > 0)

    # ---- JSON lines -------------------------------------------------------------------
    def iter_dicts(self) -> Iterator[dict]:
        iou = self.iou()
        for k, sid in enumerate(self.ids):
            d = {"id": sid, "I": int(self.I[k]), "U": int(self.U[k]), "iou": float(iou[k]),
                 "pred_area": int(self.pred_area[k]), "gt_area": int(self.gt_area[k]),
                 "type": TYPES[self.type[k]]}
            if self.pred_nt[k] >= 0:
                d["pred_nt"] = bool(self.pred_nt[k])
            yield d

    @classmethod
    def from_dicts(cls, rows: Iterable[dict], source: str = "records") -> "SampleRecords":
        ids, cols = [], {k: [] for k in ("I", "U", "pred_area", "gt_area", "type", "pred_nt")}
        for n, r in enumerate(rows):
            try:
                ids.append(str(r["id"]))
                for k in ("I", "U", "pred_area", "gt_area"):
                    cols[k].append(int(r[k]))
                cols["type"].append(r.get("type", "one"))
                nt = r.get("pred_nt")
                cols["pred_nt"].append(-1 if nt is None else int(bool(nt)))
            except (KeyError, TypeError, ValueError) as e:
                raise RefbenchError(f"{source}: record {n + 1} is malformed ({e!r}); expected id, I, U, pred_area, gt_area") from None
        return cls(ids, np.asarray(cols["I"], np.int64), np.asarray(cols["U"], np.int64),
                   np.asarray(cols["pred_area"], np.int64), np.asarray(cols["gt_area"], np.int64),
                   type_codes(cols["type"], f"{source}: type"), np.asarray(cols["pred_nt"], np.int8))

    def to_jsonl(self) -> str:
        return "".join(json.dumps(d) + "\n" for d in self.iter_dicts())


def read_jsonl(path: str | os.PathLike, recover_last: bool = False, what: str = "JSON-lines file") -> tuple[list, int]:
    """The parsed lines of a JSON-lines file and how many unreadable trailing lines were dropped.

    With ``recover_last`` an incomplete or corrupt *last* line (a process killed mid-write) is
    dropped and counted; a corrupt line anywhere else is always an error naming the line.
    Blank lines are skipped.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise RefbenchError(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RefbenchError(f"{path}: cannot read the {what} ({e})") from None
    rows: list = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if recover_last and n == len(lines) - 1:
                return rows, 1
            raise RefbenchError(f"{path}: line {n + 1} is not valid JSON; the {what} is corrupt") from None
    return rows, 0
