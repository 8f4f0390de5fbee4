"""Public name of refbench's one user-facing exception (defined in :mod:`refbench.core.errors`)."""
from refbench.core.errors import RefbenchError, suggest

__all__ = ["RefbenchError", "suggest"]
