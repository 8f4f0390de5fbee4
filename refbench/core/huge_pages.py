"""Transparent huge pages for PyTorch's large CPU tensors (``THP_MEM_ALLOC_ENABLE``).

A paper model's forward at 480² allocates and frees gigabytes of activations; glibc serves every
block above 32 MiB (and many below) with a fresh ``mmap``, so each forward page-faults once per
4 KiB page and the kernel zeroes each page.  PyTorch's CPU allocator can ask the kernel for 2 MiB
pages instead (``madvise(MADV_HUGEPAGE)`` on blocks of 2 MiB and more) when ``THP_MEM_ALLOC_ENABLE=1``
is in the environment *before its first allocation*: 10-40x fewer page faults, faster forwards, no
more memory, bitwise the same outputs (benchmarks/huge_pages.py measures all of it).

The ``refbench`` command turns it on for itself (:func:`request_huge_pages`, called before torch is
imported) unless the user already set the variable (``THP_MEM_ALLOC_ENABLE=0`` keeps 4 KiB pages).
Python users set it before starting Python.  It changes only where memory comes from, never a
value; where the kernel disables huge pages (``/sys/kernel/mm/transparent_hugepage/enabled`` =
``never``) or outside Linux, it does nothing.
"""
from __future__ import annotations

import os
import sys

ENV = "THP_MEM_ALLOC_ENABLE"
_PROBE_BYTES = 64 << 20  # above glibc's largest mmap threshold: always its own mapping


def request_huge_pages() -> bool:
    """Set ``THP_MEM_ALLOC_ENABLE=1`` for this process (and the processes it starts).

    Returns True when it set it; False when the user already chose (the variable is set) or torch
    is already imported (PyTorch read the variable at its first allocation: too late to change).
    """
    if ENV in os.environ or "torch" in sys.modules:
        return False
    os.environ[ENV] = "1"
    return True


def huge_pages_active() -> bool:
    """True if PyTorch's CPU allocator takes its huge-page path in this process (it advises the
    kernel; a kernel with huge pages set to ``never`` still declines).

    PyTorch aligns the blocks it advises for huge pages to the page size; glibc's own mappings put
    the block 64 bytes past a page boundary.  Allocates (never touches) 64 MiB of address space.
    """
    import torch

    probe = torch.empty(_PROBE_BYTES, dtype=torch.uint8)
    return probe.data_ptr() % 4096 == 0
