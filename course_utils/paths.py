"""Where the course's files live: the repository, its data, its models, and `build/` for generated files.

Every module, script, test and notebook asks here instead of walking `__file__` parents on
its own, so one environment variable moves a whole kind of file:

- `COURSE_BUILD_DIR` moves everything generated (executed notebooks, checkpoints, slides,
  grading) out of the repository, e.g. onto a scratch disk;
- `COURSE_DATA_DIR` points the data loaders at another copy of `data/`.

Both are read when a function is called, not at import, so a test can set them late.

>>> (ROOT / "course_utils" / "paths.py").exists()
True
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ROOT", "NOTEBOOKS_DIR", "MODELS_DIR", "STUDENT_DIR", "data_dir", "build_root", "build_dir"]

ROOT = Path(__file__).resolve().parent.parent  # the repository (course_utils/ is installed in editable mode)
NOTEBOOKS_DIR = ROOT / "notebooks"  # the source notebooks, with solutions
MODELS_DIR = ROOT / "models"  # shipped checkpoints (small, committed)
STUDENT_DIR = ROOT / "student"  # the student's own copies: never deleted by the course


def data_dir() -> Path:
    """`data/` of the repository, or $COURSE_DATA_DIR when set."""
    return Path(os.environ.get("COURSE_DATA_DIR") or ROOT / "data")


def build_root() -> Path:
    """`build/` of the repository, or $COURSE_BUILD_DIR when set (not created)."""
    return Path(os.environ.get("COURSE_BUILD_DIR") or ROOT / "build")


def build_dir(*parts: str) -> Path:
    """`build/<parts>` (under $COURSE_BUILD_DIR when set), created if needed: generated files go there.

    >>> build_dir("executed").name
    'executed'
    """
    for p in parts:
        if not isinstance(p, (str, os.PathLike)) or not str(p) or Path(p).is_absolute() or ".." in Path(p).parts:
            raise ValueError(f"build_dir: each part must be a relative folder name inside build/, got {p!r}")
    path = build_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
