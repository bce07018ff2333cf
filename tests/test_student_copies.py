"""Every student copy runs top to bottom: only unsolved graded tests fail, and every figure still appears.

A student copy is nbgrader's generate_assignment output (`autograde.build_release`): each
solution replaced by `raise NotImplementedError()`, hidden tests removed. Run All on it must
- stop nowhere: graded test cells carry the `raises-exception` tag, which nbclient (and
  JupyterLab) honour by going on past the error; any other cell that fails is a bug (a later
  cell that uses an exercise's function falls back to the course's reference through
  `course_utils.tools.grading.use_or_reference`);
- draw every figure and widget the solution notebook draws, in the same cell.

The notebooks run in SMOKE mode, headless (tests/conftest.py sets the environment), with
nbclient, whose per-cell `raises-exception` rule is the one tested here. papermill runs past
such a cell too but then raises PapermillExecutionError for any error output, so it is not
used for this. nbgrader grades by error output: a tagged test that fails still scores 0.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from course_utils.paths import ROOT
from course_utils.tools import autograde
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from notebook_runner import NOTEBOOKS, OUT_DIR

pytestmark = pytest.mark.notebook  # starts kernels

FIGURE_MIMES = ("image/png", "application/vnd.plotly.v1+json", "application/vnd.jupyter.widget-view+json")
TIMEOUT = 600  # seconds per cell, as in tests/notebook_runner.py


def execute(path: Path, allow_errors: bool = False) -> tuple[nbformat.NotebookNode, float]:
    """Run a notebook in its own folder with nbclient (SMOKE, headless); return (executed notebook, seconds).

    It stops at the first error outside a cell tagged `raises-exception`, as Run All does
    (the notebook returned holds the outputs up to there), unless `allow_errors` (for a
    survey of every failing cell).
    """
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=TIMEOUT,
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute()
    except CellExecutionError:
        pass  # the failing cell's error output is in nb: the caller reports it
    return nb, time.perf_counter() - start


def is_graded_test(cell) -> bool:
    return cell.cell_type == "code" and bool(cell.metadata.get("nbgrader", {}).get("grade"))


def errors(nb) -> list[tuple[int, str, str]]:
    """(cell index, error name, message) of every error output."""
    return [
        (i, o.ename, o.evalue)
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]


def figures(nb) -> dict[str, set[str]]:
    """{cell id: figure mime types it displayed}, for the cells that displayed one."""
    found = {}
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        kinds = {m for o in c.outputs if o.output_type in ("display_data", "execute_result") for m in o.get("data", {})}
        if kinds & set(FIGURE_MIMES):
            found[c.id] = kinds & set(FIGURE_MIMES)
    return found


def solution_run(path: Path) -> tuple[nbformat.NotebookNode, str]:
    """The solution notebook executed in SMOKE mode, and where it came from.

    tests/test_notebooks.py (which runs first) leaves each SMOKE run in build/executed/smoke/:
    reused when it is newer than the notebook and than every course_utils module, and has no
    error; otherwise the notebook runs here. That halves this test's time in a full suite run.
    """
    done = OUT_DIR / path.name
    newest = max(f.stat().st_mtime for f in [path, *(ROOT / "course_utils").rglob("*.py")])
    if done.exists() and done.stat().st_mtime > newest:
        nb = nbformat.read(done, as_version=4)
        if not errors(nb):
            return nb, f"reused {done.relative_to(OUT_DIR.parent.parent)}"
    nb, seconds = execute(path)
    return nb, f"{seconds:.1f} s"


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """{notebook stem: its student copy}, built by nbgrader into a private course root."""
    return autograde.build_release(course=tmp_path_factory.mktemp("course"))


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem in autograde.assignments()], ids=lambda p: p.stem)
def test_student_copy_runs_top_to_bottom_with_every_figure(path, released):
    student, s_seconds = execute(released[path.stem])
    bad = [(i, e, m) for i, e, m in errors(student) if not is_graded_test(student.cells[i])]
    assert not bad, f"{path.name} student copy: Run All stops at a cell that is not a graded test: {bad}"
    tests = [c for c in student.cells if is_graded_test(c)]
    assert all("raises-exception" in c.metadata.get("tags", []) for c in tests), "graded tests need raises-exception"
    assert any(errors(student)), f"{path.name}: no graded test failed on the unsolved copy"
    solution, how = solution_run(path)
    assert not errors(solution), f"{path.name}: the solution notebook fails: {errors(solution)}"
    want, got = figures(solution), figures(student)
    assert want, f"{path.name}: the solution draws no figure (is the figure detection broken?)"
    index = {c.id: i for i, c in enumerate(solution.cells)}
    missing = {
        f"cell {index[k]} ({k})": sorted(v - got.get(k, set())) for k, v in want.items() if v - got.get(k, set())
    }
    assert not missing, f"{path.name} student copy lacks figures the solution draws: {missing}"
    print(f"{path.name}: student copy {s_seconds:.1f} s, solution {how} (SMOKE)")
