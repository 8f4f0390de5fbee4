"""The pretrained parts a paper recipe starts from must be given: training does not silently start
from random weights.

Each model declares, per variant, the pretrained parts its paper initialises from
(``ModelInfo.pretrained``: Swin-B ImageNet-22k, BERT-base, CLIP RN101, ...; see
``baselines/common/pretrained.py`` for the files).  refbench downloads nothing, so the user passes
them as build arguments (``--model-arg swin_path=FILE``).  :func:`check_pretrained` lists what is
missing; :func:`require_pretrained` turns that into one error line naming every missing part, its
file and where it comes from.  ``--from-scratch`` (``from_scratch=True``) says random weights are
meant; ``--init-checkpoint`` supplies all weights at once and needs no part.
"""
from __future__ import annotations

import os
from typing import Mapping

from refbench.core.errors import RefbenchError
from refbench.core.models import ModelInfo


def check_pretrained(info: ModelInfo, variant: str, model_args: Mapping[str, object], from_scratch: bool,
                     init_checkpoint: str | os.PathLike | None = None) -> list[str]:
    """What is missing to start ``info.name``/``variant`` the way its paper does: one entry per
    pretrained part whose build argument is absent (``"swin_path: Swin-B ... (from ...)"``) or names
    no existing file or folder.  Empty when nothing is missing, when ``from_scratch`` is set, when
    ``init_checkpoint`` gives the starting weights, or when the variant has no pretrained parts."""
    if from_scratch or init_checkpoint:
        return []
    problems = []
    for part in info.pretrained.get(variant, ()):
        value = model_args.get(part.model_arg)
        if value is None or str(value) == "":
            problems.append(f"{part.model_arg}: {part.file_format}, from {part.source}")
        elif not os.path.exists(os.path.expanduser(str(value))):
            problems.append(f"{part.model_arg}={value} does not exist ({part.file_format})")
    return problems


def require_pretrained(info: ModelInfo, variant: str, model_args: Mapping[str, object], from_scratch: bool,
                       init_checkpoint: str | os.PathLike | None = None) -> None:
    """Raise one RefbenchError line when :func:`check_pretrained` finds anything missing."""
    problems = check_pretrained(info, variant, model_args, from_scratch, init_checkpoint)
    if problems:
        args = " ".join(f"--model-arg {p.model_arg}=PATH" for p in info.pretrained.get(variant, ()))
        raise RefbenchError(f"{info.name} {variant}: the paper recipe starts from pretrained weights, missing "
                            + "; ".join(problems)
                            + f". Pass {args} (nothing is downloaded), or --from-scratch to train from random weights")
