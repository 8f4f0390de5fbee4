"""The HTML report (``refbench report``); its overlays are drawn by refbench.tables.overlays.

``gallery``: worst / best / random samples of a run with their saved masks;
``html``: one self-contained page (inline CSS/JS, images as data URIs, every string escaped).
"""
