"""Slice analysis: a run's metrics by target type, expression length, object size, category,
seen/unseen, spatial / relational / attribute words and same-category ambiguity, with 95 % CIs,
and two runs compared slice by slice with a paired test.

    from refbench.analysis import analyze
    a = analyze(["runs/lavt-tiny/synth_val"])          # or two runs on the same samples

``slices``: the exact definitions (word lists and bins are module constants); ``analyze``: the
join of records and split and the per-slice numbers; ``render``: tables (through
``refbench.tables`` renderers), the figure and the JSON document.
"""
from refbench.analysis.analyze import Analysis, analyze

__all__ = ["Analysis", "analyze"]
