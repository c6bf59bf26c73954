"""Small helpers shared by the scenario modules."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path


def have(program: str) -> bool:
    return shutil.which(program) is not None


def python() -> str:
    """This interpreter's real path (the image the kernel reports for it)."""
    return os.path.realpath(sys.executable)


def q(path: Path | str) -> str:
    """Shell-quote one of our own sandbox paths for a fixed script."""
    return shlex.quote(str(path))
