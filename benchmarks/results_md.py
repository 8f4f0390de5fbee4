"""Write one named section of ``benchmarks/RESULTS.md``; every other byte of the file stays as it was.

A section is the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` (each on a line of
its own).  :func:`replace_section` swaps that text for a new body, appends the section when the
file lacks it and creates the file when it is missing.  The read-modify-write is serialized by an
exclusive ``flock`` on the file's folder (two benchmarks finishing at once both land) and the new
file replaces the old one by rename (a crash never leaves half a file).

Every benchmark's ``--write-results`` goes through :func:`write_results`: a Markdown table of the
run's own figures plus the run's facts (:func:`run_facts`: the exact command, the date, the CPU,
its core count, torch's version and thread count), so that no figure in RESULTS.md is typed by hand.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import os
import platform
import re
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python benchmarks/x.py` from a checkout, without an install
    sys.path.insert(0, str(REPO))

from refbench.core.errors import RefbenchError  # noqa: E402
from refbench.core.provenance import cpu_facts  # noqa: E402
from refbench.core.results import write_text_atomic  # noqa: E402

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = ("# Benchmark results\n\n"
          "Every section below is written by a script under `benchmarks/` run with `--write-results`\n"
          "(see `benchmarks/README.md`); each states the command, date and machine of its run.\n"
          "Do not edit the sections by hand: rerun the script.\n")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _markers(name: str) -> tuple[str, str]:
    if not _NAME.fullmatch(name):
        raise RefbenchError(f"results section {name!r}: use letters, digits, '_', '.' or '-' only")
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def splice_section(text: str, name: str, body: str) -> str:
    """``text`` with section ``name``'s content replaced by ``body`` (appended when absent).

    The markers stay where they were; nothing outside them changes.  ``body`` must not contain the
    section's own markers; a file holding a start marker without its end marker (or two sections of
    the same name) is refused rather than guessed at.
    """
    start, end = _markers(name)
    if start in body or end in body:
        raise RefbenchError(f"results section {name!r}: the body contains the section's own markers")
    body = body.strip("\n")
    n_start, n_end = text.count(start), text.count(end)
    if n_start == 0 and n_end == 0:
        if not text:
            text = HEADER
        sep = "" if text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return f"{text}{sep}{start}\n{body}\n{end}\n"
    if n_start != 1 or n_end != 1 or text.index(start) > text.index(end):
        raise RefbenchError(f"{RESULTS_MD.name}: section {name!r} has {n_start} start and {n_end} end marker(s) "
                            f"out of order or repeated; fix the markers by hand, then rerun")
    i = text.index(start) + len(start)
    j = text.index(end)
    return f"{text[:i]}\n{body}\n{text[j:]}"


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``folder`` (Linux/BSD ``flock`` on the directory itself)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def replace_section(name: str, body: str, path: str | os.PathLike = RESULTS_MD) -> Path:
    """Replace (or add) section ``name`` of the Markdown file ``path`` with ``body``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(path.parent):
        old = path.read_bytes().decode("utf-8") if path.is_file() else ""  # bytes: keep \r\n as they are
        new = splice_section(old, name, body)
        if new != old:
            write_text_atomic(path, new)
    return path


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that ran, as ``python benchmarks/x.py ARGS`` (script path relative to the repo)."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve() if argv else Path("?")
    try:
        shown = script.relative_to(REPO).as_posix()
    except ValueError:
        shown = str(argv[0])
    return shlex.join(["python", shown, *argv[1:]])


def run_facts(extra: dict[str, str] | None = None) -> dict[str, str]:
    """What identifies a run: command, date (UTC), CPU model, cores, vector ISA and bf16 support, load, Python, torch and its threads."""
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    cpu = cpu_facts()
    bf16 = "native bf16" if cpu["cpu_native_bf16"] else "no native bf16"
    facts = {"command": f"`{command_line()}`",
             "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             "machine": f"{cpu['cpu']}, {os.cpu_count()} logical cores, torch CPU capability "
                        f"{cpu['cpu_capability']}, {bf16}, {platform.system()} {platform.machine()}",
             "load average (1/5/15 min, when written)": " ".join(f"{x:.2f}" for x in load) if load else "n/a",
             "software": f"Python {platform.python_version()}, torch {torch.__version__}, "
                         f"torch threads {torch.get_num_threads()}"}
    if torch.cuda.is_available():
        facts["GPU"] = torch.cuda.get_device_name()
    facts.update(extra or {})
    return facts


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    """A GitHub Markdown table; ``align`` is one of ``l``/``r`` per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    if len(align) != len(headers) or any(len(r) != len(headers) for r in rows):
        raise ValueError("markdown_table: every row needs one cell per header")
    esc = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in headers) + " |",
             "|" + "|".join("---" if a == "l" else "--:" for a in align) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def write_results(name: str, title: str, tables: Sequence[str], notes: Sequence[str] = (),
                  facts: dict[str, str] | None = None, path: str | os.PathLike = RESULTS_MD) -> Path:
    """Write section ``name``: a ``##`` title, the Markdown ``tables``, ``notes`` (one paragraph each)
    and the run's facts (:func:`run_facts` plus ``facts``)."""
    parts = [f"## {title}", *tables, *notes]
    parts.append("\n".join(f"- {k}: {v}" for k, v in run_facts(facts).items()))
    out = replace_section(name, "\n\n".join(p.strip("\n") for p in parts), path)
    print(f"wrote section {name!r} of {out}")
    return out
