"""Public name of the evaluation protocols (defined in :mod:`refbench.core.protocols`)."""
from refbench.core.protocols import (BINARIZATIONS, FAMILIES, NO_TARGET_RULES, PROTOCOLS, Protocol, get_protocol,
                                     register_protocol)

__all__ = ["Protocol", "PROTOCOLS", "get_protocol", "register_protocol", "FAMILIES", "BINARIZATIONS",
           "NO_TARGET_RULES"]
