"""The published numbers in leaderboards/ against the paper texts they were read from.

Every number of every data file must appear in the text of its table; for the tables whose
rows survive the PDF extraction intact, each row's numbers must be exactly the numeric tokens
of its line, in column order (which also catches a number in the wrong column), and the
paper's visible bold/underline marks and printed differences must agree with the regenerated
table.  The table blocks come from the verbatim excerpt tests/fixtures/paper_tables.txt, cut
from the paper texts with the anchors below (regenerate it with
``python tests/test_leaderboards.py --write-fixture PAPERS_DIR`` after changing them).
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

import leaderboards
from leaderboards import COLUMNS, LeaderboardError, PublishedNumber, parse_csv

FIXTURE = Path(__file__).parent / "fixtures" / "paper_tables.txt"
SOURCE = {"magnet": "magnet_cvpr2024.txt", "dmmi": "dmmi_iccv2023.txt", "meres": "meres.txt",
          "jmceln": "jmceln_emnlp2023.txt"}
# (paper, block) -> (first line containing, end line containing); a block holds one table, or
# all sub-tables of a table when the extraction interleaves them (MERES Table 4).
ANCHORS = {
    ("magnet", "1"): ("\tMethod Backbone", "Table 1. Comparison"),
    ("magnet", "2"): ("Method\tRefCOCO val", "Table 2. Comparison"),
    ("magnet", "3a"): ("Model\t\tRefCOC", "masked language modeling (MLM) and masked"),
    ("magnet", "3d"): ("Model\tRet\tCOCO", "(d) Universality"),
    ("magnet", "3b"): ("Туре\tRefCOCO", "(b) Comparing different"),  # 'Туре' is Cyrillic in the text
    ("magnet", "3e"): ("Pyramid scales\tRefCOCO", "(e) Effectiveness"),
    ("magnet", "3c"): ("MLP layers\tRefCOCO", "(c) Sensitivity"),
    ("magnet", "3f"): ("$\\mathcal{L}_{P2P}$\t", "(f) Effectiveness"),
    ("dmmi", "1"): ("Method\tVisual Encoder", "Table 2:"),
    ("dmmi", "2"): ("Method\toIoU\tmIoU\tAcc", "val, testA, and testB subsets"),
    ("dmmi", "3"): ("\tMBA\t\tI2T Decoder", "segmentation results drop significantly"),
    ("meres", "1"): ("\tMethod\tVenue\tVision Encoder\tLanguage Encoder", "Table 1: Performance comparison"),
    ("meres", "2"): ("Method\tVision Encoder\tLanguage Encoder\tval _(U)", "Table 2: Comparison for generalization"),
    ("meres", "3"): ("Guidance Elements\tRefCOCO val", "Table 3: Main ablation"),
    ("meres", "4"): ("Method\tmIoU (%)\toIoU (%)\tGlobal", "Table 4: Ablation studies"),
    ("meres", "5"): ("Method\tVenue\tLLM", "Table 5: Comparison with LLM"),
    ("meres", "6"): ("Method\tVenue\tVision Encoder\tRefCOCO", "Table 6: oIoU performance"),
    ("meres", "7"): ("Dataset\tSplit\tMax", "Table 7: Length"),
    ("jmceln", "1"): ("\tYear\tRefcoco", "Table 1: Comparison with state-of-the-art"),
    ("jmceln", "2"): ("#\tMethods\tmIoU", "Table 2: Ablation study"),
    ("jmceln", "3"): ("Model\tSplit\tmIoU", "Table 3: Results for refcoco+"),
}
# tables whose every row is one intact line of the text (checked number by number, in column order)
LINE_CHECKED = {("magnet", "1"), ("magnet", "2"), ("magnet", "3b"), ("magnet", "3c"), ("magnet", "3e"),
                ("dmmi", "1"), ("dmmi", "2"), ("dmmi", "3"), ("meres", "1"), ("meres", "2"), ("meres", "3"),
                ("meres", "5"), ("meres", "6"), ("jmceln", "1"), ("jmceln", "2"), ("jmceln", "3")}
# tables whose bold marks survive the extraction completely (text bold == regenerated bold)
BOLD_COMPLETE = {("dmmi", "1"), ("dmmi", "2"), ("dmmi", "3"), ("jmceln", "1"), ("jmceln", "2"), ("jmceln", "3")}
EXPECTED_TABLES = {
    "magnet": ["1", "2", "3a", "3b", "3c", "3d", "3e", "3f"],
    "dmmi": ["1", "2", "3"],
    "meres": ["1", "2", "3", "4a", "4b", "4c", "4d", "4e", "4f", "5", "6", "7"],
    "jmceln": ["1", "2", "3"],
}

TAG = re.compile(r"<[^>]+>")
CITATION = re.compile(r"\[[^\]]*\]")
AUTHOR_YEAR = re.compile(r"\([^()]*\b(?:19|20)\d\d[^()]*\)")
DELTA = re.compile(r"\(\s*([+-]\d+(?:\.\d+)?)\s*\)")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
DASHES = ("-", "–")


# ---- paper text ----------------------------------------------------------------------------------------------
def extract_block(text: str, start: str, end: str) -> list[str]:
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if start in line)
    last = next(i for i, line in enumerate(lines) if end in line and i > first)
    return lines[first:last + 1]


def _fixture_blocks() -> dict[tuple[str, str], list[str]]:
    blocks: dict[tuple[str, str], list[str]] = {}
    current = None
    for line in FIXTURE.read_text(encoding="utf-8").split("\n"):
        if line.startswith("### "):
            paper, block = line[4:].split()[:2]
            current = blocks.setdefault((paper, block), [])
        elif current is not None:  # lines before the first block header are comments
            current.append(line)
    return {k: v[:-1] if v and v[-1] == "" else v for k, v in blocks.items()}


def _paper_blocks(papers_dir: Path) -> dict[tuple[str, str], list[str]]:
    texts = {p: (papers_dir / f).read_text(encoding="utf-8") for p, f in SOURCE.items()}
    return {key: extract_block(texts[key[0]], *anchors) for key, anchors in ANCHORS.items()}


BLOCKS = _fixture_blocks()


def block_of(paper: str, table: str) -> list[str]:
    return BLOCKS[(paper, table)] if (paper, table) in BLOCKS else BLOCKS[(paper, table.rstrip("abcdef"))]


def clean(line: str) -> str:
    return CITATION.sub("", AUTHOR_YEAR.sub("", TAG.sub("", line)))


def value_tokens(line: str) -> list[str]:
    """Numbers and dashes of a line, printed differences like (+1.44) removed."""
    return [t for t in DELTA.sub(" ", clean(line)).split() if NUMBER.fullmatch(t) or t in DASHES]


def norm(label: str) -> str:
    return re.sub(r"[\s†‡]", "", label).lower()


def row_label(nums: list[PublishedNumber]) -> str:
    return nums[0].method or str(nums[0].row)


def find_row_lines(paper: str, table: str, rows: dict[int, list[PublishedNumber]]) -> dict[int, str]:
    """The line of each row, scanning the block in order (so rows must be in the paper's order)."""
    lines = block_of(paper, table)
    out, pos = {}, 0
    for r in sorted(rows):
        label = norm(row_label(rows[r]))
        for i in range(pos, len(lines)):
            if any(norm(cell) == label for cell in clean(lines[i]).split("\t")):
                out[r], pos = lines[i], i + 1
                break
        else:
            raise AssertionError(f"{paper} table {table} row {r} ({row_label(rows[r])!r}): no line of the "
                                 "paper's table after the previous row carries this label")
    return out


def rows_of(paper: str, table: str) -> dict[int, list[PublishedNumber]]:
    rows: dict[int, list[PublishedNumber]] = {}
    for n in leaderboards.numbers(paper, table):
        rows.setdefault(n.row, []).append(n)
    return rows


ALL_TABLES = [(p, t) for p in leaderboards.papers("paper") for t in leaderboards.tables(p)]


# ---- the data files ----------------------------------------------------------------------------------------------
def test_every_table_of_the_issue_is_there():
    assert {p: leaderboards.tables(p) for p in leaderboards.papers("paper")} == EXPECTED_TABLES


def test_metric_of_every_number_is_explicit():
    for n in leaderboards.numbers():
        assert n.metric in leaderboards.METRICS
        assert n.metric_heading, f"{n.paper}:{n.table} row {n.row}: no metric heading"
        if n.metric_heading.startswith("not printed"):
            assert n.note or n.paper == "magnet", f"{n.paper}:{n.table}: an inferred metric needs a note"


@pytest.mark.parametrize("paper,table", ALL_TABLES)
def test_every_number_is_in_the_paper_text(paper, table):
    tokens = Counter(t for line in block_of(paper, table) for t in value_tokens(line))
    # a row the extraction garbled (its note says so) is read from the rest of the table (e.g. LAVT = Baseline)
    whole = Counter(t for (p, b), lines in BLOCKS.items() if p == paper and b.rstrip("abcdef") == table.rstrip("abcdef")
                    for line in lines for t in value_tokens(line))
    for n in leaderboards.numbers(paper, table):
        found = tokens[n.text] > 0 or ("garbled" in n.note and whole[n.text] > 0)
        assert found, (f"{paper} table {table} row {n.row} {n.method!r} {n.split_name} {n.metric}: "
                       f"{n.text} is not in the paper's table text")


@pytest.mark.parametrize("paper,table", ALL_TABLES)
def test_every_method_name_is_in_the_paper_text(paper, table):
    text = norm(clean("\n".join(block_of(paper, table))).replace("\t", ""))
    for r, nums in rows_of(paper, table).items():
        if nums[0].method not in ("", "✓", "✗") and "the text shows the name" not in nums[0].note:
            assert norm(nums[0].method) in text, \
                f"{paper} table {table} row {r}: {nums[0].method!r} is not in the paper's table text"


@pytest.mark.parametrize("paper,table", sorted(LINE_CHECKED))
def test_rows_match_the_paper_line_by_line(paper, table):
    from refbench.tables import published_tables

    (rendered,) = published_tables(paper, table)
    lines = find_row_lines(paper, table, rows_of(paper, table))
    assert len(lines) == len(rendered.rows)
    for (r, line), row in zip(sorted(lines.items()), rendered.rows):
        expected = [c.text for c in row.cells]
        got = value_tokens(line)
        assert len(got) >= len(expected), f"{paper}:{table} row {r}: line has too few numbers: {line!r}"
        got = ["-" if t in DASHES else t for t in got[-len(expected):]]
        assert got == expected, f"{paper}:{table} row {r}: paper {got} != data {expected}"


@pytest.mark.parametrize("paper,table", sorted(LINE_CHECKED))
def test_visible_marks_agree_with_the_regenerated_marks(paper, table):
    from refbench.tables import published_tables

    (rendered,) = published_tables(paper, table)
    lines = find_row_lines(paper, table, rows_of(paper, table))
    for (r, line), row in zip(sorted(lines.items()), rendered.rows):
        bold = re.findall(r"<b>\s*(\d+(?:\.\d+)?)\s*</b>", line)
        under = re.findall(r"<u>\s*(\d+(?:\.\d+)?)\s*</u>", line)
        best = [c.text for c in row.cells if c.mark == "best"]
        second = [c.text for c in row.cells if c.mark == "second"]
        assert set(bold) <= set(best), f"{paper}:{table} row {r}: bold in the paper {bold}, regenerated {best}"
        assert set(under) <= set(second), f"{paper}:{table} row {r}: underlined {under}, regenerated {second}"
        if (paper, table) in BOLD_COMPLETE:
            assert sorted(bold) == sorted(best), f"{paper}:{table} row {r}: bold {bold} != regenerated {best}"


@pytest.mark.parametrize("paper,table", [("magnet", "3b"), ("magnet", "3c"), ("magnet", "3e"), ("jmceln", "3")])
def test_printed_differences_agree_line_by_line(paper, table):
    from refbench.tables import published_tables

    (rendered,) = published_tables(paper, table)
    lines = find_row_lines(paper, table, rows_of(paper, table))
    for (r, line), row in zip(sorted(lines.items()), rendered.rows):
        printed = [f"({d})" for d in DELTA.findall(TAG.sub("", line))]
        assert printed == [c.delta for c in row.cells if c.delta], f"{paper}:{table} row {r}"


@pytest.mark.parametrize("paper,block", [("magnet", "3d"), ("magnet", "3f"), ("meres", "4")])
def test_printed_differences_are_regenerated(paper, block):
    """Where rows are garbled, every difference the text still shows must be one we regenerate."""
    from refbench.tables import published_tables

    tables = published_tables(paper, block.rstrip("abcdef") if paper == "meres" else block)
    regenerated = Counter(c.delta for t in tables for row in t.rows for c in row.cells if c.delta)
    printed = [f"({d})" for line in block_of(paper, block) for d in DELTA.findall(TAG.sub("", line))]
    assert printed, "no printed differences found: wrong block?"
    for d in printed:
        assert regenerated[d] > 0, f"{paper} {block}: the paper prints {d}, refbench does not regenerate it"


def test_garbled_rows_say_so_in_a_note():
    for n in leaderboards.numbers("magnet", "3d"):
        if n.method in ("LAVT", "LAVT + MG", "CRIS") and n.dataset == "refcoco":
            assert "garbled" in n.note or "artefact" in n.note


def test_fixture_has_every_anchored_block():
    assert set(BLOCKS) == set(ANCHORS)
    assert all(BLOCKS[key] for key in ANCHORS)


# ---- loading and validation ----------------------------------------------------------------------------------
def _csv(*rows: str) -> str:
    return ",".join(COLUMNS) + "\n" + "".join(r + "\n" for r in rows)


GOOD = "magnet,1,1,,lavt,LAVT,,,Swin-B,,,refcoco,val,,oIoU,caption,72.73,"


def test_parse_keeps_the_printed_text_and_the_value():
    (n,) = parse_csv(_csv(GOOD.replace("72.73", "65.7")), "magnet", "x.csv")
    assert (n.text, n.value, n.subset, n.split_name) == ("65.7", 65.7, None, "refcoco/val")


@pytest.mark.parametrize("row,field", [
    (GOOD.replace("oIoU", "IoU"), "metric"),
    (GOOD.replace("refcoco,val", "refcoco,valid"), "split"),
    (GOOD.replace(",refcoco,", ",refcocog,"), "dataset"),
    (GOOD.replace("72.73", "72,73"), None),
    (GOOD.replace("72.73", "n/a"), "value"),
    (GOOD.replace("72.73", "172.73"), "value"),
    (GOOD.replace("magnet,1,1", "dmmi,1,1"), "paper"),
    (GOOD.replace("magnet,1,1", "magnet,1,0"), "row"),
    (GOOD.replace("LAVT,,,", "LAVT,*,,"), "extra_data"),
])
def test_bad_rows_name_line_and_field(row, field):
    with pytest.raises(LeaderboardError) as e:
        parse_csv(_csv(row), "magnet", "leaderboards/published/magnet.csv")
    msg = str(e.value)
    assert "magnet.csv:2" in msg and "\n" not in msg
    if field:
        assert repr(field) in msg


def test_duplicates_and_inconsistent_rows_are_refused():
    with pytest.raises(LeaderboardError, match="duplicate of line 2"):
        parse_csv(_csv(GOOD, GOOD), "magnet", "m.csv")
    other_split = GOOD.replace("refcoco,val", "refcoco,testA").replace("Swin-B", "Swin-L")
    with pytest.raises(LeaderboardError, match="'backbone' differs"):
        parse_csv(_csv(GOOD, other_split), "magnet", "m.csv")
    with pytest.raises(LeaderboardError, match="header must be"):
        parse_csv("paper,table\nmagnet,1\n", "magnet", "m.csv")


def test_unknown_paper_and_table():
    with pytest.raises(LeaderboardError, match="Did you mean 'magnet'"):
        leaderboards.numbers("magent")
    with pytest.raises(LeaderboardError, match="has no table '9'"):
        leaderboards.numbers("dmmi", "9")


def test_setting_column_parses():
    n = leaderboards.numbers("dmmi", "3")[0]
    assert n.settings() == {"Bi-D": "✓", "MS": "✓", "L_sim": "", "L_con": ""}


def test_reproduced_index_loads():
    runs = leaderboards.reproduced_runs()
    assert isinstance(runs, list)
    for run in runs:
        assert run.path().exists(), f"reproduced/index.json lists {run.results}, which is not there"


def test_reproduced_training_entries_point_at_their_logs():
    import json

    root = Path(leaderboards.__file__).parent / "reproduced"
    training = json.loads((root / "index.json").read_text())["training"]
    assert sorted(e["model"] for e in training) == ["dmmi", "jmceln", "lavt", "magnet", "meres"]
    for e in training:
        summary = json.loads((root / e["dir"] / "train.json").read_text())
        assert summary["model"] == e["model"] and summary["steps"] == e["steps"]
        assert round(summary["best"]["score"], 2) == e["best"]["value"]


def _write_fixture(papers_dir: Path) -> None:
    if not all((papers_dir / f).exists() for f in SOURCE.values()):
        sys.exit(f"{papers_dir} does not hold {', '.join(SOURCE.values())}")
    shared = _paper_blocks(papers_dir)
    out = ["# Verbatim excerpts of the results tables of the four papers (text extracted from the PDFs),",
           "# used by tests/test_leaderboards.py when ../shared/papers is not available.",
           "# Regenerate: python tests/test_leaderboards.py --write-fixture"]
    for (paper, block), lines in shared.items():
        out.append(f"### {paper} {block} ({SOURCE[paper]})")
        out.extend(lines)
    FIXTURE.write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write-fixture":
        _write_fixture(Path(sys.argv[2]))
