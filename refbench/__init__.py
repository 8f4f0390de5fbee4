"""refbench: benchmark and evaluation toolkit for Referring Image Segmentation.

Public entry points:
    refbench.metrics      exact RIS metrics (oIoU, mIoU, P@X, Acc, gIoU, cIoU, N-acc, T-acc)
    refbench.protocols    named, versioned evaluation protocols
    refbench.models       model registry (build_model)
    refbench.errors       RefbenchError, the one exception type users see
"""
__version__ = "0.1.0"

from refbench.errors import RefbenchError  # noqa: E402,F401
