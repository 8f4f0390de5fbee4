"""refbench: benchmark and evaluation toolkit for Referring Image Segmentation.

Public entry points:
    refbench.metrics      exact RIS metrics (oIoU, mIoU, P@X, Acc, gIoU, cIoU, N-acc, T-acc)
    refbench.protocols    named, versioned evaluation protocols
    refbench.models       model interface and registry (build_model; plugins register through
                          the ``refbench.models`` entry-point group)
    refbench.errors       RefbenchError, the one exception type users see

Inside the project everything builds on ``refbench.core`` (see docs/architecture.md); the three
public modules above are the stable names for users and plugins and re-export the core.
"""
from refbench.core import __version__  # noqa: F401
from refbench.core.errors import RefbenchError  # noqa: F401
