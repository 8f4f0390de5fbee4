"""Dataset builders: the synthetic benchmark (``synth``) and Ref-ZOM-style datasets (``refzom``).

Shared: ``files`` (deterministic writers; segmentations in the form the official loaders read)
and ``output`` (``--out`` checks, staged builds swapped into place, ``--force`` only on folders
refbench made, worker processes that die with the build).
"""
