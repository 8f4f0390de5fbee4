"""Dataset builders: the synthetic benchmark (``synth``), later Ref-ZOM."""
