"""How each published table is laid out: its columns, row labels, marks and caption.

The numbers and the rows (in paper order) come from the data files in ``leaderboards``;
a :class:`Layout` adds what the data cannot say: which numbers go into which column and
under which header, which descriptive fields the paper prints in front of the numbers,
whether the paper marks the best number in bold (and the second best underlined), within
which groups of rows, whether it prints differences to a reference row, and the caption
(including the metric and the evaluation protocol behind the numbers).
"""
from __future__ import annotations

from dataclasses import dataclass

from refbench.core.errors import RefbenchError, suggest

MARKS = ("none", "bold", "bold+underline")
KINDS = ("main", "ablation", "statistics")


@dataclass(frozen=True)
class Column:
    """A value column: the numbers it holds and its header.

    ``dataset``/``split``/``metric`` = None match any value (e.g. MERES Table 1, whose
    row blocks are mIoU and oIoU under the same columns); ``subset`` must match exactly.
    """

    label: str
    group: str = ""
    dataset: str | None = None
    split: str | None = None
    metric: str | None = None
    subset: str | None = None

    def holds(self, dataset: str, split: str, subset: str | None, metric: str) -> bool:
        return ((self.dataset is None or self.dataset == dataset) and (self.split is None or self.split == split)
                and self.subset == subset and (self.metric is None or self.metric == metric))


@dataclass(frozen=True)
class Layout:
    """One published table.

    Attributes:
        paper, table: ids as in the data files (``magnet``, ``3a``).
        caption: the paper's caption, shortened, plus what a reader needs to interpret it.
        protocol: how the numbers were produced (stated under every rendering).
        columns: the value columns, left to right.
        labels: (header, field) of the descriptive columns before the values; field is a
            PublishedNumber attribute (``method`` renders with its †/‡ mark), ``row``
            (the row number) or ``setting:<key>``.
        section_header: show the row sections as a first column with this header;
            None = sections are separated by a rule only.
        marks: ``none``, ``bold`` (best) or ``bold+underline`` (best, second best), as the paper.
        groups: row numbers ranked together (and the reference group of ``delta``);
            default: each section, or the whole table.
        delta: ``first``/``last``: print each value's difference to that row of its group,
            as the paper does; None = no differences.
        kind: ``main`` (comparisons), ``ablation`` or ``statistics``; only ``main`` tables are
            searched when a reproduced run is matched without ``--against``.
        protocol_name: the refbench protocol that reproduces the paper's numbers, when known.
        row_protocols: (method_key, protocol) for rows evaluated under another protocol.
        row_variants: (method_key, variant) for rows that are another variant of a refbench model
            than its first (MERES Table 2's own row is the ``clip`` variant, trained on seen
            categories); ``refbench reproduce`` evaluates that variant.
        unreproducible_rows: (method_key, reason) for rows that name a refbench model in a
            configuration refbench does not have (e.g. LAVT retrained with a CLIP text encoder):
            ``refbench reproduce`` skips them under ``--rows all`` and says why.
        notes: remarks on the table as a whole (printed under it).
    """

    paper: str
    table: str
    caption: str
    protocol: str
    columns: tuple[Column, ...]
    labels: tuple[tuple[str, str], ...] = (("Method", "method"),)
    section_header: str | None = None
    marks: str = "none"
    groups: tuple[tuple[int, ...], ...] = ()
    delta: str | None = None
    kind: str = "main"
    protocol_name: str | None = None
    row_protocols: tuple[tuple[str, str], ...] = ()
    row_variants: tuple[tuple[str, str], ...] = ()
    unreproducible_rows: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.marks not in MARKS:
            raise ValueError(f"{self.key}: marks must be one of {MARKS}")
        if self.kind not in KINDS:
            raise ValueError(f"{self.key}: kind must be one of {KINDS}")
        if self.delta not in (None, "first", "last"):
            raise ValueError(f"{self.key}: delta must be None, 'first' or 'last'")

    @property
    def key(self) -> str:
        """``paper:table``, the form ``--against`` takes."""
        return f"{self.paper}:{self.table}"

    def protocol_for(self, dataset: str, method_key: str = "") -> str | None:
        """The refbench protocol behind this table's numbers of a row on ``dataset`` (None = unknown)."""
        if self.protocol_name is None:
            return None
        if method_key in dict(self.row_protocols):
            return dict(self.row_protocols)[method_key]
        return "refzom" if dataset == "ref-zom" else self.protocol_name


# ---- column sets -------------------------------------------------------------------------------
def _cols(metric: str | None, spec: list[tuple[str, str, str, str]], subset: str | None = None) -> tuple[Column, ...]:
    return tuple(Column(label, group, ds, sp, metric, subset) for group, label, ds, sp in spec)


_STD9 = [("RefCOCO", "val", "refcoco", "val"), ("RefCOCO", "test A", "refcoco", "testA"),
         ("RefCOCO", "test B", "refcoco", "testB"), ("RefCOCO+", "val", "refcoco+", "val"),
         ("RefCOCO+", "test A", "refcoco+", "testA"), ("RefCOCO+", "test B", "refcoco+", "testB"),
         ("G-Ref", "val (U)", "refcocog-umd", "val"), ("G-Ref", "test (U)", "refcocog-umd", "test"),
         ("G-Ref", "val (G)", "refcocog-google", "val")]
_STD8 = _STD9[:8]
_JM8 = [("Refcoco", "val", "refcoco", "val"), ("Refcoco", "testA", "refcoco", "testA"),
        ("Refcoco", "testB", "refcoco", "testB"), ("Refcoco+", "val", "refcoco+", "val"),
        ("Refcoco+", "testA", "refcoco+", "testA"), ("Refcoco+", "testB", "refcoco+", "testB"),
        ("Refcocog", "val", "refcocog-umd", "val"), ("Refcocog", "test", "refcocog-umd", "test")]


def _metric_cols(group: str, dataset: str | None, split: str | None,
                 spec: list[tuple[str, str]]) -> tuple[Column, ...]:
    return tuple(Column(label, group, dataset, split, metric) for label, metric in spec)


_PX = [("P@0.5", "P@0.5"), ("P@0.7", "P@0.7"), ("P@0.9", "P@0.9"), ("mIoU", "mIoU"), ("oIoU", "oIoU")]
_MAGNET_T3 = (Column("RefCOCO", "", "refcoco", "val", "oIoU"), Column("RefCOCO+", "", "refcoco+", "val", "oIoU"))
_MERES_T4 = (Column("mIoU (%)", "RefCOCO+ val", "refcoco+", "val", "mIoU"),
             Column("oIoU (%)", "RefCOCO+ val", "refcoco+", "val", "oIoU"))

_MAGNET_PROTOCOL = ("MagNet rows: the official LAVT-family test procedure (refbench protocol lavt: 480x480 canvas, "
                    "oIoU = sum I / sum U over all sentences); the multi-dataset checkpoint (‡) is evaluated at "
                    "448x448 (lavt-448). Other rows are the numbers MagNet cites.")
_MAGNET_T3_PROTOCOL = ("Ablation setting of Sec. 4.4: 10 epochs, 224x224 input, validation splits of RefCOCO and "
                       "RefCOCO+, oIoU; not comparable with Tables 1 and 2. Differences to the reference row are "
                       "recomputed from the values.")
_DMMI_PROTOCOL = ("DMMI rows: the official LAVT-family test procedure (refbench protocol lavt) on RefCOCO/+/G-Ref; "
                  "Ref-ZOM with refbench protocol refzom (oIoU/mIoU over one- and many-target sentences, Acc = share "
                  "of zero-target sentences predicted empty). Other rows are the numbers DMMI cites or reproduced.")
_MERES_PROTOCOL = ("MERES has no public code; Appendix C defines oIoU, mIoU and P@X 'following previous works' "
                   "(closest refbench protocol: lavt). Other rows are the numbers MERES cites.")
_JMCELN_PROTOCOL = ("JMCELN has no public code; per Sec. 4 every method was retrained with its released code at "
                    "416x416 input and scored with mIoU (JMCELN predicts with argmax over a 2-channel map); the "
                    "evaluation details are in a supplementary that is not available.")

LAYOUTS: dict[str, Layout] = {}


def _add(layout: Layout) -> None:
    LAYOUTS[layout.key] = layout


# ---- MagNet (CVPR 2024) ------------------------------------------------------------------------
_add(Layout(
    "magnet", "1",
    "Comparison with SOTA methods using the oIoU metric. Single dataset: the predefined train/test splits of "
    "RefCOCO, RefCOCO+ and G-Ref; multiple datasets: their train splits combined, with test images removed; "
    "extra datasets: data beyond these three. † uses extra datasets; ‡ MagNet trained on multiple datasets only.",
    _MAGNET_PROTOCOL, _cols("oIoU", _STD9), labels=(("Method", "method"), ("Backbone", "backbone")),
    section_header="", marks="bold", protocol_name="lavt", row_protocols=(("magnet-all", "lavt-448"),)))
_add(Layout(
    "magnet", "2",
    "Comparison with SOTA methods on RefCOCO val using oIoU, mIoU and P@X (precision at IoU threshold X).",
    _MAGNET_PROTOCOL,
    _metric_cols("RefCOCO val", "refcoco", "val",
                 [("oIoU", "oIoU"), ("mIoU", "mIoU"), ("P@0.5", "P@0.5"), ("P@0.7", "P@0.7"), ("P@0.9", "P@0.9")]),
    marks="bold+underline", protocol_name="lavt",
    notes=("The paper's text keeps only some of the marks (underlines on SADLR's mIoU, P@0.7 and P@0.9); refbench "
           "recomputes best and second best per column.",)))
_T3 = {
    "3a": ("(a) Masked language modeling (MLM), masked vision-language modeling (MaskedVLM) and Mask Grounding (MG) "
           "added to the baseline.", (("Model", "method"),), ()),
    "3b": ("(b) Mask encoder input of Mask Grounding. Center: center coordinates of the masked region; Average: "
           "average visual feature within it.", (("Type", "method"),), ()),
    "3c": ("(c) Sensitivity of Mask Grounding's masked token predictor to the number of MLP layers.",
           (("MLP layers", "method"),), ()),
    "3d": ("(d) Universality of Mask Grounding: added to LAVT, ReLA and CRIS.", (("Model", "method"),),
           ((1, 2), (3, 4), (5, 6))),
    "3e": ("(e) Cross-modal Alignment Module (CAM) at different pyramid scales.", (("Pyramid scales", "method"),), ()),
    "3f": ("(f) Cross-modal Alignment Loss: pixel-to-pixel (L_P2P) and pixel-to-text (L_P2T) terms.",
           (("L_P2P", "setting:L_P2P"), ("L_P2T", "setting:L_P2T")), ()),
}
for _t, (_cap, _labels, _groups) in _T3.items():
    _add(Layout("magnet", _t, "Ablation experiments " + _cap, _MAGNET_T3_PROTOCOL, _MAGNET_T3, labels=_labels,
                marks="bold", groups=_groups, delta="first", kind="ablation", protocol_name=None,
                notes=("Marks: best per column (per model pair in (d)); the paper's bold survives only partly "
                       "in its text.",)))

# ---- DMMI (ICCV 2023) --------------------------------------------------------------------------
_add(Layout(
    "dmmi", "1",
    "Comparison with state-of-the-art methods in terms of oIoU (%) on three datasets. In G-Ref, U and G denote the "
    "UMD and Google partition. Upper part: CNN visual encoders; lower part: Transformer-based or beyond-ImageNet "
    "pre-trained visual encoders. Best per part in bold.",
    _DMMI_PROTOCOL, _cols("oIoU", _STD9), labels=(("Method", "method"), ("Visual Encoder", "backbone")),
    marks="bold", protocol_name="lavt"))
_add(Layout(
    "dmmi", "2",
    "Comparison with representative methods on Ref-ZOM (test), reproduced by the DMMI authors; DMMI uses Swin-B.",
    _DMMI_PROTOCOL,
    _metric_cols("Ref-ZOM test", "ref-zom", "test", [("oIoU", "oIoU"), ("mIoU", "mIoU"), ("Acc", "Acc")]),
    marks="bold", protocol_name="refzom"))
_add(Layout(
    "dmmi", "3",
    "Ablation of the components of DMMI on G-Ref (UMD val) and Ref-ZOM (test). Bi-D: bi-directional operation in "
    "the MBA module; MS: multi-scale; I2T: image-to-text decoder with losses L_sim and L_con.",
    _DMMI_PROTOCOL,
    (Column("oIoU", "G-Ref", "refcocog-umd", "val", "oIoU"), Column("oIoU", "Ref-ZOM", "ref-zom", "test", "oIoU"),
     Column("Acc", "Ref-ZOM", "ref-zom", "test", "Acc")),
    labels=(("#", "row"), ("Bi-D", "setting:Bi-D"), ("MS", "setting:MS"), ("L_sim", "setting:L_sim"),
            ("L_con", "setting:L_con")),
    marks="bold", kind="ablation", protocol_name="lavt",
    notes=("The G-Ref column is read as the UMD val split: row 7 equals Table 1's DMMI (Swin-B) val (U).",)))

# ---- MERES ---------------------------------------------------------------------------------------
_add(Layout(
    "meres", "1",
    "Comparison with existing state-of-the-art methods on three referring expression segmentation benchmarks. "
    "(U): UMD split, (G): Google split. The upper block reports mIoU, the lower block oIoU; best per block in bold.",
    _MERES_PROTOCOL, _cols(None, _STD9),
    labels=(("Method", "method"), ("Venue", "venue"), ("Vision Encoder", "backbone"),
            ("Language Encoder", "text_encoder")),
    section_header="", marks="bold"))
_add(Layout(
    "meres", "2",
    "Comparison in the generalization setting of CGFormer on G-Ref using mIoU: trained on seen categories, "
    "evaluated on the seen and unseen subsets (Appendix E: CLIP text encoder, 50 epochs).",
    _MERES_PROTOCOL + " Seen/unseen subsets: refbench split grammar refcocog-umd/val:seen etc.",
    tuple(Column(sub, group, ds, sp, "mIoU", sub) for group, ds, sp in
          [("G-Ref val (U)", "refcocog-umd", "val"), ("G-Ref test (U)", "refcocog-umd", "test"),
           ("G-Ref val (G)", "refcocog-google", "val")] for sub in ("seen", "unseen")),
    labels=(("Method", "method"), ("Vision Encoder", "backbone"), ("Language Encoder", "text_encoder")),
    row_variants=(("meres", "clip"),),
    unreproducible_rows=(("lavt", "this LAVT row was trained on the seen categories with a CLIP text encoder (CGFormer's "
                                  "setting); the released LAVT checkpoints use BERT and saw every category"),)))
_add(Layout(
    "meres", "3",
    "Main ablation of the guidance elements. LE: linguistic expression tokens; VE: visual expression tokens. "
    "The full model is the last row (gray in the paper).",
    _MERES_PROTOCOL,
    _metric_cols("RefCOCO val", "refcoco", "val", _PX) + _metric_cols("G-Ref val (U)", "refcocog-umd", "val", _PX),
    labels=(("Guidance Elements", "method"),), kind="ablation"))
_T4 = {
    "4a": ("(a) Selection method.", (("Method", "method"),)),
    "4b": ("(b) Utilization of the global and local linguistic cues.",
           (("Global", "setting:Global"), ("Local", "setting:Local"))),
    "4c": ("(c) Semantic refinement.", (("Method", "method"),)),
    "4d": ("(d) Considering the visual relationship.", (("Method", "method"),)),
    "4e": ("(e) Supervision by the contrastive loss.", (("Method", "method"),)),
    "4f": ("(f) Normalization with the top-k mask.", (("Method", "method"),)),
}
for _t, (_cap, _labels) in _T4.items():
    _add(Layout("meres", _t, "Ablation of the visual expression extractor on RefCOCO+ val " + _cap +
                " The default setting is the last row (gray in the paper); drops are relative to it.",
                _MERES_PROTOCOL, _MERES_T4, labels=_labels, delta="last", kind="ablation"))
_add(Layout(
    "meres", "5",
    "Comparison with LLM-based RES models. The paper prints no metric; MERES's row equals its Table 1 oIoU rounded "
    "to one decimal and LISA-7B's equals the oIoU MagNet cites, so the table is read as oIoU.",
    _MERES_PROTOCOL, _cols("oIoU", _STD8),
    labels=(("Method", "method"), ("Venue", "venue"), ("LLM", "setting:LLM"), ("Vision Encoder", "backbone"))))
_add(Layout(
    "meres", "6",
    "oIoU comparison with RES models that use additional large-scale image-text data in training (Appendix B). "
    "(U): UMD split, (G): Google split. Best in bold.",
    _MERES_PROTOCOL, _cols("oIoU", _STD9),
    labels=(("Method", "method"), ("Venue", "venue"), ("Vision Encoder", "backbone")), marks="bold"))
_add(Layout(
    "meres", "7", "Length of the language expressions (in words) on each split of the three datasets.",
    "Dataset statistics (words per expression), not model results.",
    (Column("Max", "", None, None, "words-max"), Column("Min", "", None, None, "words-min"),
     Column("Mean", "", None, None, "words-mean")),
    labels=(("Split", "setting:Split"),), section_header="Dataset", kind="statistics",
    notes=("Min is printed once per dataset (apparently a merged cell); refbench keeps it on the row where the text "
           "shows it. Mean is not in the text for the RefCOCO+ and G-Ref train rows.",)))

# ---- JMCELN (EMNLP 2023) ------------------------------------------------------------------------
_JMCELN_LAVT = ("JMCELN retrained LAVT with its released code at 416x416; the released LAVT checkpoints are "
                "480x480 models, so they would not reproduce this row (compare them with magnet:1 instead)")
_add(Layout(
    "jmceln", "1",
    "Comparison with state-of-the-art methods on three datasets; all methods trained with their released code at "
    "416x416 input and scored with mIoU. Refcocog: the UMD partition (the paper says 'UNC').",
    _JMCELN_PROTOCOL, _cols("mIoU", _JM8), labels=(("Method", "method"), ("Year", "venue")), marks="bold",
    unreproducible_rows=(("lavt", _JMCELN_LAVT),)))
_add(Layout(
    "jmceln", "2", "Ablation study on RefCOCO testB.", _JMCELN_PROTOCOL,
    _metric_cols("Refcoco testB", "refcoco", "testB", [("mIoU", "mIoU"), ("Pr@50", "P@0.5"), ("Pr@90", "P@0.9")]),
    labels=(("#", "row"), ("Methods", "method")), marks="bold", kind="ablation"))
_add(Layout(
    "jmceln", "3", "Results for RefCOCO+ testA and testB: JMCELN against LAVT, with the differences.",
    _JMCELN_PROTOCOL,
    _metric_cols("Refcoco+", "refcoco+", None, [("mIoU", "mIoU"), ("Pr@50", "P@0.5"), ("Pr@90", "P@0.9")]),
    labels=(("Model", "method"), ("Split", "setting:Split")), marks="bold", groups=((1, 2), (3, 4)), delta="first",
    unreproducible_rows=(("lavt", _JMCELN_LAVT),)))


# ---- refbench's reference runs on its synthetic benchmark ---------------------------------------------------------
_SYNTH_COLS = [("mIoU", "mIoU"), ("oIoU", "oIoU"), ("P@0.5", "P@0.5"), ("P@0.9", "P@0.9")]
_add(Layout(
    "refbench", "synth",
    "Tiny variants of the reference models trained from scratch by `refbench train` on the synthetic benchmark "
    "(synth/train, size small, seed 0; at most 20 CPU-minutes each), evaluated with the checkpoints shipped in the "
    "package on synth/val, synth/testA (round shapes) and synth/testB (the others). Trivial predictors for scale: "
    "empty mask, full image, and the largest annotated object (ignores the sentence). Best per column in bold.",
    "refbench protocol lavt (480x480 canvas, oIoU = sum I / sum U, mIoU = mean IoU, P@X with >=); each model's "
    "official binarization (argmax, or sigmoid > 0.5 for MagNet and MERES); tiny models run at their own input "
    "size and their logits are resized to the canvas.",
    _metric_cols("synth val", "synth", "val", _SYNTH_COLS[:2]) + _metric_cols("synth testA", "synth", "testA",
                                                                                _SYNTH_COLS)
    + _metric_cols("synth testB", "synth", "testB", _SYNTH_COLS),
    labels=(("Model", "method"),), section_header="", marks="bold", protocol_name="lavt"))


def get_layout(paper: str, table: str) -> Layout:
    """The layout of ``paper`` table ``table``; a RefbenchError naming the valid tables otherwise."""
    from leaderboards import check_paper

    check_paper(paper)
    layout = LAYOUTS.get(f"{paper}:{table}")
    if layout is None:
        raise _no_table(paper, table, [lay.table for lay in LAYOUTS.values() if lay.paper == paper])
    return layout


def _no_table(paper: str, table: str, valid: list[str]) -> RefbenchError:
    err = suggest(table, valid, "table")
    return RefbenchError(f"paper {paper!r} has no table {table!r}.{str(err).split('.', 1)[1]}")


def resolve_tables(paper: str, table: str | None) -> list[Layout]:
    """Layouts for ``--table``: an exact id (``3a``, ``3(a)``), a parent id (``3`` = 3a–3f) or None = all."""
    from leaderboards import check_paper

    check_paper(paper)
    mine = [lay for lay in LAYOUTS.values() if lay.paper == paper]
    if table is None:
        return mine
    wanted = table.strip().replace("(", "").replace(")", "").replace(" ", "").lower()
    exact = [lay for lay in mine if lay.table == wanted]
    if exact:
        return exact
    children = [lay for lay in mine if lay.table.rstrip("abcdefghij") == wanted]
    if children:
        return children
    valid = {lay.table for lay in mine} | {lay.table.rstrip("abcdefghij") for lay in mine}
    raise _no_table(paper, table, sorted(valid))


def parse_table_ref(ref: str) -> Layout:
    """``paper:table`` (e.g. ``magnet:1``, ``meres:4a``) -> its Layout."""
    paper, sep, table = ref.partition(":")
    if not sep or not paper or not table:
        raise RefbenchError(f"--against {ref!r}: use paper:table, e.g. magnet:1 or meres:2")
    layouts = resolve_tables(paper.strip().lower(), table)
    if len(layouts) != 1:
        raise RefbenchError(f"--against {ref!r} names {len(layouts)} tables "
                            f"({', '.join(lay.key for lay in layouts)}); name one of them")
    return layouts[0]
