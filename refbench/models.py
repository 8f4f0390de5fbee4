"""Public name of the model interface and registry (defined in :mod:`refbench.core.models`).

    from refbench.models import build_model, ModelInfo, RISModel
    model = build_model("magnet", variant="paper")

Third-party packages register a model through the ``refbench.models`` entry-point group with a
:class:`ModelInfo`, exactly as refbench's own baselines do.
"""
from refbench.core.models import (ENTRY_POINT_GROUP, ModelInfo, RISModel, build_model, get_model_info, list_models,
                                  registry, shipped_checkpoint)

__all__ = ["ModelInfo", "RISModel", "build_model", "get_model_info", "list_models", "registry",
           "shipped_checkpoint", "ENTRY_POINT_GROUP"]
