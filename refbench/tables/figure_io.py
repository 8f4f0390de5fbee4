"""Writing a matplotlib figure as a PNG: the output path checked before any drawing, headless (Agg)."""
from __future__ import annotations

from pathlib import Path

from refbench.core.errors import RefbenchError
from refbench.core.outdir import check_output


def check_png_out(out: str | Path) -> Path:
    """Refuse, before any work, an ``--out`` that is not a writable ``.png`` file path."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise RefbenchError(f"--out {out}: figures are written as PNG; give a file name ending in .png")
    check_output(out, "--out", folder=False)
    return out


def save_png(fig, out: str | Path, dpi: int = 120) -> Path:
    """Render ``fig`` with the Agg backend (no GUI, no global pyplot state) into ``out``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = check_png_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, dpi=dpi, bbox_inches="tight")
    return out
