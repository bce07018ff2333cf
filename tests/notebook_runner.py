"""Execute a notebook with papermill the way the test suite does, and fail with the failing cell's error."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import papermill as pm

from course_utils.paths import NOTEBOOKS_DIR, ROOT, build_root  # noqa: F401  (ROOT: the tests import it from here)

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"  # the .ipynb only: the percent scripts beside them (NN_*.py) are not notebooks
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob(NOTEBOOK_GLOB))
OUT_DIR = build_root() / "executed" / "smoke"  # shared with scripts/build_slides.py, which reuses fresh copies


class NotebookFailed(AssertionError):
    pass


def code_cells(path: Path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def run_notebook(path: Path, parameters: dict | None = None, timeout: int = 600) -> tuple[Path, float]:
    """Run `path` into build/test-executed/ (never over the source); return (output path, seconds).

    Raises NotebookFailed naming the cell and its error, or the network call the offline
    guard blocked even if the notebook caught the exception.
    """
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / path.name
    log = OUT_DIR / (path.stem + ".offline.log")
    log.unlink(missing_ok=True)
    os.environ["COURSE_OFFLINE_LOG"] = str(log)
    os.environ["COURSE_WIDGET_SWEEP"] = "1"  # every widget is moved to both ends of every control
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(path),
            str(out),
            parameters={"SMOKE": True, **(parameters or {})},
            kernel_name="python3",
            cwd=str(path.parent),
            progress_bar=False,
            execution_timeout=timeout,
            log_output=False,
        )
    except pm.PapermillExecutionError as e:
        raise NotebookFailed(f"{path.name}: cell {e.exec_count} raised {e.ename}: {e.evalue}") from None
    finally:
        os.environ.pop("COURSE_OFFLINE_LOG", None)
        os.environ.pop("COURSE_WIDGET_SWEEP", None)
    if log.exists() and log.read_text().strip():
        raise NotebookFailed(f"{path.name} tried to reach the network: {log.read_text().strip()}")
    return out, time.perf_counter() - start
