"""Every notebook: follows the contract of CONTRIBUTING.md ("A notebook"), and runs top to bottom in SMOKE mode."""

import subprocess
import sys

import nbformat
import pytest
from notebook_runner import NOTEBOOKS, ROOT, run_notebook

IDS = [p.stem for p in NOTEBOOKS]


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_start_here.ipynb", "notebooks/00_start_here.ipynb must exist"


def _cells(path):
    return nbformat.read(path, as_version=4).cells


def _checked(cell):
    return cell.cell_type == "code" and cell.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_contract(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = nb.cells
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "kernelspec must be python3"
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# "), "first cell: the title"
    title = cells[0].source.lower()
    for word in ("smoke", "full"):
        assert word in title, f"title cell must state the measured run time ({word} mode)"
    params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    for knob in ("SMOKE", "SEED", "DEVICE", "COURSE_SMOKE"):
        assert knob in params[0].source, f"parameters cell lacks {knob}"
    assert any("setup" in c.metadata.get("tags", []) for c in cells), "a cell tagged 'setup' (imports, device, seed)"
    missing = [i for i, c in enumerate(cells) if "slide_type" not in c.metadata.get("slideshow", {})]
    assert not missing, f"cells {missing} have no slideshow.slide_type metadata"
    assert "read next" in cells[-1].source.lower(), "the last cell says what to read next"
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    if "plotly" in code:
        assert "import course_utils.tools.plots" in code, (
            "a notebook that draws with plotly imports course_utils.tools.plots "
            "(the renderer that works in JupyterLab and offline slides)"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_presenter_notes_in_every_section(path):
    """Every '## ' section (but the last, 'what to read next') has a speaker-notes cell."""
    cells = _cells(path)
    starts = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## ")]
    bare = []
    for a, b in zip(starts, starts[1:] + [len(cells)]):
        if "read next" in cells[a].source.lower():
            continue
        if not any(c.metadata.get("slideshow", {}).get("slide_type") == "notes" for c in cells[a:b]):
            bare.append(cells[a].source.splitlines()[0])
    assert starts, f"{path.name} has no '## ' sections"
    assert not bare, f"{path.name}: sections without presenter notes (slide_type 'notes'): {bare}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_committed_outputs(path):
    for i, c in enumerate(_cells(path)):
        if c.cell_type == "code" and (c.outputs or c.execution_count) and not _checked(c):
            pytest.fail(
                f"{path.name} cell {i} carries outputs or an execution count; strip them "
                "(only cells starting with '# NBVAL_CHECK_OUTPUT' keep theirs)"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_exercises_are_nbgrader_cells(path):
    cells = _cells(path)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), f"duplicate nbgrader grade_id in {path.name}"
    graded = [c for c in cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert graded, f"{path.name} has no graded exercise"
    for c in cells:
        meta = c.metadata.get("nbgrader", {})
        if meta.get("solution"):
            assert "### BEGIN SOLUTION" in c.source and "### END SOLUTION" in c.source, meta["grade_id"]
        if meta.get("grade"):
            assert meta.get("points", 0) > 0, f"{meta['grade_id']} has no points"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_runs_in_smoke_mode(path):
    out, seconds = run_notebook(path)
    executed = nbformat.read(out, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: error outputs {[(e.ename, e.evalue) for e in errors]}"
    noise = [
        (c.execution_count, o.text.strip().splitlines()[0][:200])
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream" and o.name == "stderr" and o.text.strip()
    ]
    assert not noise, f"{path.name} printed to stderr (pink blocks in a lecture); fix the cause: {noise}"
    print(f"{path.name}: {seconds:.1f} s in SMOKE mode")


@pytest.mark.notebook
def test_nbval_checked_outputs():
    """nbval re-runs the notebooks that have '# NBVAL_CHECK_OUTPUT' cells and compares those outputs."""
    checked = [p for p in NOTEBOOKS if any(_checked(c) for c in _cells(p))]
    assert checked, "no notebook has a # NBVAL_CHECK_OUTPUT cell"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--nbval-lax",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(ROOT / "notebooks"),
            *map(str, checked),
        ],
        cwd=ROOT / "notebooks",
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
