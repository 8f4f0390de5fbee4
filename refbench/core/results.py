"""The results document: one class that writes, reads, validates and upgrades results files.

Every run (``refbench eval``, ``refbench score``) writes one JSON document, schema
``refbench.results`` version 2, beside its per-sample records (``records.jsonl``):

    identity      what the numbers describe (:class:`RunIdentity`): model, variant, checkpoint sha256,
                  dataset/split/subset, data root and annotation sha256s, protocol hash, limit,
                  skipped samples, precision, batch composition; two runs with the same identity
                  score the same samples the same way
    metrics       {name: percent at full precision}, ci {name: [low, high]}, ci_method
    counts        {total, zero, one, many}
    protocol      every field of the Protocol; protocol_hash its hash
    notes         what a reader must know (shipped weights, resized logits, partial run …)
    provenance    device, wall time, samples/s, command config, environment (versions, git commit)

A document is *partial* when it scored fewer samples than its split has (``--limit``, skipped
images); tables, plots, verify and reproduce say "partial: N of M" wherever it is shown.
Version-1 files (refbench 0.1, flat) are upgraded on read.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from refbench.core.errors import RefbenchError
from refbench.core.protocols import Protocol
from refbench.core.records import SampleRecords, read_jsonl

SCHEMA = "refbench.results"
SCHEMA_VERSION = 2
KINDS = ("eval", "score")


# ---- files ----------------------------------------------------------------------------------------
def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` via a temporary file + rename, so a crash never leaves half a file.

    The file gets the permissions any new file of this process gets (0666 minus the umask), like
    every other output, not the 0600 of a bare ``mkstemp``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """JSON (indented, NaN refused) written atomically (see :func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def write_records_jsonl(path: str | os.PathLike, records: SampleRecords) -> None:
    """All records at once, atomically."""
    write_text_atomic(path, records.to_jsonl())


def read_records_jsonl(path: str | os.PathLike, recover: bool = False) -> tuple[SampleRecords, int]:
    """Records from a JSONL file and the number of unreadable trailing lines dropped.

    With ``recover=True`` an incomplete or corrupt *last* line (a run killed mid-write) is
    dropped and counted; corruption anywhere else is always an error.  Progress markers of a
    running eval (``{"batch_done": …}``) are skipped.
    """
    rows, dropped = read_jsonl(path, recover_last=recover, what="records file")
    rows = [r for r in rows if not (isinstance(r, dict) and "batch_done" in r)]
    return SampleRecords.from_dicts(rows, str(path)), dropped


# ---- the document ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunIdentity:
    """Everything that decides which samples were scored and how: equal identities, equal numbers.

    ``split_samples`` is the number of samples the split (subset) has in the data the run read;
    ``n_samples`` the number scored.  ``batch_size`` and ``world_size`` fix the batch composition
    (the metrics do not depend on it, but a resumed run must continue the same batches).
    """

    model: str | None = None
    variant: str | None = None
    checkpoint_sha256: str | None = None
    dataset: str | None = None
    split: str | None = None
    subset: str | None = None
    data_root: str | None = None
    annotation_sha256: dict[str, str] = field(default_factory=dict)
    protocol_hash: str | None = None
    limit: int | None = None
    skipped_samples: int = 0
    n_samples: int = 0
    split_samples: int | None = None
    precision: str | None = None
    batch_size: int | None = None
    world_size: int | None = None
    input_size: int | None = None

    @property
    def split_name(self) -> str | None:
        """``dataset/split[:subset]``, or None without a split (``score`` of two folders)."""
        if self.dataset is None or self.split is None:
            return None
        return f"{self.dataset}/{self.split}" + (f":{self.subset}" if self.subset else "")

    @property
    def partial(self) -> bool:
        """Fewer samples scored than the split has (``--limit``, skipped images)."""
        return self.limit is not None or self.skipped_samples > 0 or (
            self.split_samples is not None and self.n_samples < self.split_samples)

    def partial_text(self) -> str:
        """``partial: N of M`` (empty for a complete run)."""
        if not self.partial:
            return ""
        return f"partial: {self.n_samples} of {self.split_samples if self.split_samples is not None else '?'}"

    def differences(self, other: "RunIdentity", ignore: Iterable[str] = ()) -> list[tuple[str, Any, Any]]:
        """``[(field, self's value, other's value)]`` for every field that differs."""
        skip = set(ignore)
        return [(f.name, getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self)
                if f.name not in skip and getattr(self, f.name) != getattr(other, f.name)]


def first_difference(old: RunIdentity, new: RunIdentity, ignore: Iterable[str] = ()) -> str | None:
    """``"field 'x' was A, now B"`` for the first identity field that differs, else None."""
    diff = old.differences(new, ignore)
    if not diff:
        return None
    name, a, b = diff[0]
    return f"{name!r} was {a!r}, now {b!r}"


_IDENTITY_FIELDS = {f.name for f in dataclasses.fields(RunIdentity)}


@dataclass
class ResultsDoc:
    """One results file (see the module docstring).  ``path`` is where it was read from or written to."""

    kind: str
    identity: RunIdentity
    metrics: dict[str, float | None]
    counts: dict[str, int]
    protocol: Protocol
    notes: list[str] = field(default_factory=list)
    ci: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    ci_method: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    environment: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    records_file: str = "records.jsonl"

    # ---- derived --------------------------------------------------------------------------------
    @property
    def protocol_hash(self) -> str:
        return self.protocol.hash()

    @property
    def partial(self) -> bool:
        return self.identity.partial

    @property
    def records_path(self) -> Path | None:
        """``records.jsonl`` beside the results file, if it exists."""
        if self.path is None:
            return None
        p = self.path.parent / self.records_file
        return p if p.is_file() else None

    def records(self) -> SampleRecords:
        """The run's per-sample records (a RefbenchError if it has none)."""
        p = self.records_path
        if p is None:
            raise RefbenchError(f"{self.path}: no per-sample records (expected {self.records_file} beside it)")
        return read_records_jsonl(p)[0]

    # ---- writing ---------------------------------------------------------------------------------
    def to_json(self) -> dict:
        ident = dataclasses.asdict(self.identity)
        doc = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": self.kind, "created": self.created,
               "identity": ident, "split_name": self.identity.split_name, "partial": self.partial,
               "metrics": self.metrics, "counts": self.counts, "protocol": self.protocol.to_dict(),
               "protocol_hash": self.protocol_hash, "notes": list(self.notes)}
        if self.ci:
            doc["ci"] = {k: list(v) for k, v in self.ci.items()}
            doc["ci_method"] = self.ci_method
        doc["records"] = self.records_file
        doc["provenance"] = self.provenance
        doc["environment"] = self.environment
        return doc

    def write(self, path: str | os.PathLike) -> Path:
        """Validate and write atomically; returns the path."""
        self.validate(str(path))
        path = Path(path)
        write_json_atomic(path, self.to_json())
        self.path = path
        return path

    # ---- reading ---------------------------------------------------------------------------------
    def validate(self, where: str = "results") -> None:
        if self.kind not in KINDS:
            raise RefbenchError(f"{where}: field 'kind' is {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.kind == "eval":
            for name in ("model", "dataset", "split"):
                if getattr(self.identity, name) is None:
                    raise RefbenchError(f"{where}: eval results file has no {name!r}; re-run refbench eval to write it")
        if self.identity.subset not in (None, "seen", "unseen"):
            raise RefbenchError(f"{where}: field 'subset' is {self.identity.subset!r}; use null, 'seen' or 'unseen'")


def _string_field(d: dict, name: str, where: str) -> str | None:
    value = d.get(name)
    if value is not None and not isinstance(value, str):
        raise RefbenchError(f"{where}: field {name!r} must be a string, got {value!r}")
    return value or None


def _int_field(d: dict, name: str, where: str) -> int | None:
    value = d.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise RefbenchError(f"{where}: field {name!r} must be an integer, got {value!r}")
    return value


def _protocol(d: Any, where: str) -> Protocol:
    if not isinstance(d, dict):
        raise RefbenchError(f"{where}: field 'protocol' must be an object")
    try:
        return Protocol(**{**d, "thresholds": tuple(d.get("thresholds", (0.5, 0.6, 0.7, 0.8, 0.9)))})
    except TypeError as e:
        raise RefbenchError(f"{where}: field 'protocol' does not describe a refbench protocol ({e})") from None


def _identity(d: dict, where: str) -> RunIdentity:
    if not isinstance(d, dict):
        raise RefbenchError(f"{where}: field 'identity' must be an object")
    unknown = set(d) - _IDENTITY_FIELDS
    if unknown:
        raise RefbenchError(f"{where}: identity has an unknown field {sorted(unknown)[0]!r}")
    strings = ("model", "variant", "checkpoint_sha256", "dataset", "split", "subset", "data_root", "protocol_hash",
               "precision")
    ints = ("limit", "skipped_samples", "n_samples", "split_samples", "batch_size", "world_size", "input_size")
    values: dict[str, Any] = {n: _string_field(d, n, where) for n in strings if n in d}
    values.update({n: _int_field(d, n, where) for n in ints if n in d})
    ann = d.get("annotation_sha256", {}) or {}
    if not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values()):
        raise RefbenchError(f"{where}: identity.annotation_sha256 must be an object of strings")
    values["annotation_sha256"] = dict(ann)
    if values.get("skipped_samples") is None:
        values["skipped_samples"] = 0
    if values.get("n_samples") is None:
        values["n_samples"] = 0
    return RunIdentity(**values)


def _upgrade_v1(doc: dict, where: str) -> dict:
    """A flat version-1 document -> the version-2 layout (same numbers, identity gathered)."""
    n = doc.get("n_samples")
    if n is None and isinstance(doc.get("counts"), dict):
        n = doc["counts"].get("total")
    notes = [str(x) for x in doc.get("notes", []) if isinstance(x, str)]
    skipped = 0
    for note in notes:  # v1 wrote "skipped 3 sample(s) whose image is missing (...)"
        if note.startswith("skipped ") and "whose image is missing" in note:
            skipped = int(note.split()[1])
    expected = doc.get("expected_sentences")
    split_samples = None
    if doc.get("kind") == "eval":
        split_samples = (n + skipped) if doc.get("limit") is None and isinstance(n, int) else expected
    ident = {"model": doc.get("model"), "variant": doc.get("variant"),
             "checkpoint_sha256": doc.get("checkpoint_sha256"), "dataset": doc.get("dataset"),
             "split": doc.get("split"), "subset": doc.get("subset"), "data_root": doc.get("data_root"),
             "annotation_sha256": doc.get("annotation_sha256") or {}, "protocol_hash": doc.get("protocol_hash"),
             "limit": doc.get("limit"), "skipped_samples": skipped, "n_samples": n or 0,
             "split_samples": split_samples, "precision": doc.get("precision"), "batch_size": doc.get("batch_size"),
             "world_size": doc.get("world_size"), "input_size": doc.get("model_input_size")}
    prov_keys = ("checkpoint", "annotation_files", "expected_sentences", "device", "wall_time_s", "samples_per_s",
                 "config", "pred_dir", "gt", "split_name")
    out = {k: doc[k] for k in ("schema", "kind", "created", "metrics", "counts", "protocol", "protocol_hash", "notes",
                               "ci", "ci_method", "environment") if k in doc}
    out.update(schema_version=SCHEMA_VERSION, identity=ident, records=doc.get("records", "records.jsonl"),
               provenance={k: doc[k] for k in prov_keys if k in doc})
    return out


def doc_from_json(doc: Any, where: str) -> ResultsDoc:
    """Validate a parsed results document (any supported version) -> :class:`ResultsDoc`."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise RefbenchError(f"{where}: not a refbench results file (missing schema {SCHEMA!r})")
    version = doc.get("schema_version")
    if version == 1:
        doc = _upgrade_v1(doc, where)
    elif version != SCHEMA_VERSION:
        raise RefbenchError(f"{where}: results schema version {version!r} is not supported (this refbench reads "
                            f"versions 1 and {SCHEMA_VERSION}); re-run the evaluation or upgrade refbench")
    if not isinstance(doc.get("metrics"), dict):
        raise RefbenchError(f"{where}: results file has no 'metrics' object")
    metrics: dict[str, float | None] = {}
    for name, value in doc["metrics"].items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RefbenchError(f"{where}: metrics[{name!r}] is {value!r}, not a number")
        metrics[str(name)] = None if value is None else float(value)
    ci: dict[str, tuple[float | None, float | None]] = {}
    for name, pair in (doc.get("ci") or {}).items():
        if not (isinstance(pair, list) and len(pair) == 2
                and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in pair)):
            raise RefbenchError(f"{where}: ci[{name!r}] must be [low, high]")
        ci[str(name)] = (pair[0], pair[1])
    counts = doc.get("counts") or {}
    if not isinstance(counts, dict) or not all(isinstance(v, int) for v in counts.values()):
        raise RefbenchError(f"{where}: field 'counts' must be an object of integers")
    notes = doc.get("notes") or []
    if not isinstance(notes, list) or not all(isinstance(x, str) for x in notes):
        raise RefbenchError(f"{where}: field 'notes' must be a list of strings")
    records = doc.get("records", "records.jsonl")
    if not isinstance(records, str) or "/" in records or "\\" in records or records in ("", ".", ".."):
        raise RefbenchError(f"{where}: field 'records' must be a file name beside the results file")
    protocol = _protocol(doc.get("protocol"), where)
    identity = _identity(doc.get("identity", {}), where)
    stored_hash = doc.get("protocol_hash")
    if stored_hash is not None and stored_hash != protocol.hash():
        raise RefbenchError(f"{where}: protocol_hash {stored_hash!r} does not match its protocol "
                            f"({protocol.hash()!r}); the file was edited or is corrupt")
    if identity.protocol_hash is None:
        identity = dataclasses.replace(identity, protocol_hash=protocol.hash())
    out = ResultsDoc(kind=str(doc.get("kind")), identity=identity, metrics=metrics, counts=dict(counts),
                     protocol=protocol, notes=list(notes), ci=ci, ci_method=doc.get("ci_method"),
                     provenance=dict(doc.get("provenance") or {}), created=str(doc.get("created", "")),
                     environment=dict(doc.get("environment") or {}), records_file=records)
    out.validate(where)
    return out


def read_results(path: str | os.PathLike) -> ResultsDoc:
    """Read, validate and (if needed) upgrade a results file; one clear error otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RefbenchError(f"{path}: no such results file") from None
    except IsADirectoryError:
        raise RefbenchError(f"{path}: is a directory; pass the results.json inside it") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RefbenchError(f"{path}: cannot read ({e})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise RefbenchError(f"{path}: not valid JSON ({e})") from None
    doc = doc_from_json(raw, str(path))
    doc.path = path
    return doc


def new_results(report, kind: str, identity: RunIdentity, ci: dict | None = None, ci_method: str | None = None,
                provenance: dict | None = None) -> ResultsDoc:
    """A :class:`ResultsDoc` for a metric report (``refbench.metrics.MetricReport``) and its identity."""
    from refbench.core.provenance import environment, now_iso

    protocol = _protocol(report.protocol, "report")
    notes = list(report.notes)
    doc = ResultsDoc(kind=kind, identity=identity, metrics=dict(report.metrics), counts=dict(report.counts),
                     protocol=protocol, notes=notes,
                     ci={k: (v.low, v.high) for k, v in (ci or {}).items()}, ci_method=ci_method if ci else None,
                     provenance=dict(provenance or {}), created=now_iso(), environment=environment())
    if doc.partial:
        doc.notes.append(f"{identity.partial_text()} samples of {identity.split_name or 'the split'} "
                         "(--limit or skipped images): not comparable with a published number")
    return doc


# ---- transitional helpers (dict-based callers being moved to ResultsDoc) ------------------------------
def load_results(path: str | os.PathLike) -> dict:
    """The results file as a version-2 JSON dict (validated).  Prefer :func:`read_results`."""
    return read_results(path).to_json()


def results_document(report, kind: str, ci: dict | None = None, ci_method: str | None = None, **provenance) -> dict:
    """A version-2 results dict for ``report``; identity fields are taken from ``provenance``."""
    ident = {k: provenance.pop(k) for k in list(provenance) if k in _IDENTITY_FIELDS}
    ident.setdefault("n_samples", int(report.counts.get("total", 0)))
    ident.setdefault("protocol_hash", report.protocol_hash)
    return new_results(report, kind, RunIdentity(**ident), ci, ci_method, provenance).to_json()
