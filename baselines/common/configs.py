"""Variant configs with user overrides, shared by every baseline's ``build()``."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

from refbench.core.errors import RefbenchError, suggest

C = TypeVar("C")


def variant_config(configs: Mapping[str, C], variant: str, label: str, changes: Mapping[str, Any] | None = None,
                   frozen: tuple[str, ...] = ("variant",)) -> C:
    """The config dataclass of ``variant`` with ``changes`` applied.

    Unknown variants and fields (and the ``frozen`` ones) get one clear error naming the valid
    names; a value the config's ``__post_init__`` rejects is reported with the variant.
    """
    if variant not in configs:
        raise suggest(variant, configs, f"{label} variant")
    config = configs[variant]
    if not changes:
        return config
    valid = {f.name for f in dataclasses.fields(config)} - set(frozen)
    for key in changes:
        if key not in valid:
            raise suggest(key, valid, f"{label} config field")
    try:
        return dataclasses.replace(config, **changes)
    except (ValueError, TypeError) as e:
        raise RefbenchError(f"{label} variant {variant!r}: {e}") from None
