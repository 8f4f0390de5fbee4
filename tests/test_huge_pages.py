"""Huge pages for PyTorch's CPU tensors: the refbench command asks for them before torch starts,
a user's own THP_MEM_ALLOC_ENABLE wins, and the probe tells whether they are in effect."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from refbench.core import huge_pages

ON_LINUX = sys.platform.startswith("linux")


def _python(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != huge_pages.ENV}
    proc = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


PROBE = "from refbench.core.huge_pages import huge_pages_active; print(huge_pages_active())"


@pytest.mark.skipif(not ON_LINUX, reason="PyTorch's huge-page allocation exists on Linux only")
def test_probe_tells_the_setting_apart():
    assert _python(PROBE) == "False"
    assert _python(PROBE, THP_MEM_ALLOC_ENABLE="0") == "False"
    assert _python(PROBE, THP_MEM_ALLOC_ENABLE="1") == "True"


def test_request_sets_the_variable_only_when_it_can_take_effect():
    # torch not imported yet and the variable unset: set
    code = ("import os, sys; from refbench.core.huge_pages import request_huge_pages, ENV; "
            "r = request_huge_pages(); print(r, os.environ.get(ENV), 'torch' in sys.modules)")
    assert _python(code) == "True 1 False"
    # the user's own choice wins
    assert _python(code, THP_MEM_ALLOC_ENABLE="0") == "False 0 False"
    # torch already imported: too late, nothing set (and nothing claimed)
    late = ("import os, torch; from refbench.core.huge_pages import request_huge_pages, ENV; "
            "print(request_huge_pages(), os.environ.get(ENV))")
    assert _python(late) == "False None"


@pytest.mark.skipif(not ON_LINUX, reason="PyTorch's huge-page allocation exists on Linux only")
def test_the_refbench_command_runs_with_huge_pages_unless_told_not_to():
    # a subcommand that reports from inside the refbench command, after torch has started
    code = ("import click\n"
            "from refbench.cli import COMMANDS, main\n"
            "@click.command()\n"
            "def probe():\n"
            "    from refbench.core.huge_pages import huge_pages_active\n"
            "    print(huge_pages_active())\n"
            "COMMANDS.register('probe-pages', probe)\n"
            "main(['probe-pages'])")
    assert _python(code) == "True"
    assert _python(code, THP_MEM_ALLOC_ENABLE="0") == "False"
