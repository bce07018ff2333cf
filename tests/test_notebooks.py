"""Every notebook: follows the contract of CONTRIBUTING.md ("A notebook"), and runs top to bottom in SMOKE mode."""

import nbformat
import pytest
from notebook_runner import NOTEBOOKS, run_notebook

IDS = [p.stem for p in NOTEBOOKS]


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_start_here.ipynb", "notebooks/00_start_here.ipynb must exist"


def _cells(path):
    return nbformat.read(path, as_version=4).cells


def _checked(cell):
    return cell.cell_type == "code" and cell.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT")


def _printed(cell) -> dict[str, str]:
    """What a cell showed as text: its streams joined by name, and the text/plain of its results."""
    shown: dict[str, str] = {}
    for o in cell.outputs:
        if o.output_type == "stream":
            shown[o.name] = shown.get(o.name, "") + o.text
        elif o.output_type in ("execute_result", "display_data") and "text/plain" in o.data:
            shown["result"] = shown.get("result", "") + o.data["text/plain"]
        elif o.output_type == "error":
            shown["error"] = f"{o.ename}: {o.evalue}"
    return shown


def checked_output_changes(source, executed) -> list[str]:
    """The `# NBVAL_CHECK_OUTPUT` cells whose text output in `executed` differs from the one committed in `source`.

    nbval's --nbval-lax rule (those cells' committed outputs are the expected ones), applied to the
    copy test_runs_in_smoke_mode already executed instead of running the notebook a second time.
    Cells are matched by id (papermill keeps ids and adds its own injected-parameters cell).
    """
    ran = {c.get("id"): c for c in executed.cells}
    changes = []
    for cell in filter(_checked, source.cells):
        first = cell.source.splitlines()[1:2] or [""]
        if cell.get("id") not in ran:
            changes.append(f"cell {cell.get('id')} ({first[0][:60]!r}) is missing from the executed copy")
            continue
        want, got = _printed(cell), _printed(ran[cell.get("id")])
        if want != got:
            key = next(k for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k))
            w, g = want.get(key, "").splitlines(), got.get(key, "").splitlines()
            line = next((i for i, (a, b) in enumerate(zip(w, g)) if a != b), min(len(w), len(g)))
            changes.append(
                f"cell {cell.get('id')} ({first[0][:60]!r}) {key} line {line + 1}: "
                f"committed {w[line] if line < len(w) else '<end>'!r}, now {g[line] if line < len(g) else '<end>'!r}"
            )
    return changes


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
    changed = checked_output_changes(nbformat.read(path, as_version=4), executed)
    assert not changed, f"{path.name}: cells marked # NBVAL_CHECK_OUTPUT printed something else this run: {changed}"
    print(f"{path.name}: {seconds:.1f} s in SMOKE mode")


def test_checked_output_changes_names_the_first_differing_line():
    """The comparison behind test_runs_in_smoke_mode catches a changed line, a missing cell, and ignores others."""
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    def notebook(text, extra_cell=True):
        cells = [new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(x)", id="c1", outputs=[new_output("stream", text=text)])]
        if extra_cell:  # an unchecked cell may print anything
            cells.append(new_code_cell("print(y)", id="c2", outputs=[new_output("stream", text="free\n")]))
        return new_notebook(cells=cells)

    committed = notebook("a\nb\n", extra_cell=False)
    assert checked_output_changes(committed, notebook("a\nb\n")) == []
    (change,) = checked_output_changes(committed, notebook("a\nc\n"))
    assert "line 2" in change and "'b'" in change and "'c'" in change
    (short,) = checked_output_changes(committed, notebook("a\n"))
    assert "<end>" in short
    (missing,) = checked_output_changes(committed, new_notebook(cells=[]))
    assert "missing" in missing
