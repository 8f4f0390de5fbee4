"""No worker process outlives the command that started it.

:func:`die_with_parent` is the initializer of every pool or DataLoader worker refbench starts: on
Linux the worker asks the kernel for SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``), and on
every system a watchdog thread exits the worker once it has been reparented.  A command killed at any
point (SIGKILL included) therefore leaves no process behind.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


def _parent_watchdog(parent: int) -> None:
    while True:
        time.sleep(0.2)
        if os.getppid() != parent:  # reparented: the command's process is gone
            os._exit(1)


def die_with_parent(parent: int) -> None:
    """Pool initializer (``initargs=(os.getpid(),)``): this worker dies when process ``parent`` does."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watchdog below still ends the worker
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_parent_watchdog, args=(parent,), daemon=True, name="refbench-parent-watchdog").start()


def dataloader_worker_init(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: the worker dies with the process that started it."""
    die_with_parent(os.getppid())
