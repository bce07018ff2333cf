"""scripts/nbsync.py: cell ids stay stable (a re-sync does not rewrite the whole diff), and a sync
writes the notebook and its percent script from the file that was edited, never from a stale one."""

import os
import time

import nbformat
import nbsync  # scripts/ is on sys.path (tests/conftest.py)
import pytest


def _notebook(*sources):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def test_ids_survive_a_resync_and_an_edit_changes_only_its_cell(tmp_path):
    target = tmp_path / "nb.ipynb"
    first = _notebook("a = 1", "", "", "print(a)")
    nbsync.keep_cell_ids(first, target)  # no notebook yet: ids hashed from position and source
    ids = [c.id for c in first.cells]
    assert len(set(ids)) == 4, f"ids must be unique, even for the two empty cells: {ids}"
    nbformat.write(first, target)

    again = _notebook("a = 1", "", "", "print(a)")
    nbsync.keep_cell_ids(again, target)
    assert [c.id for c in again.cells] == ids

    edited = _notebook("a = 2", "", "", "print(a)", "b = 3")
    nbsync.keep_cell_ids(edited, target)
    new_ids = [c.id for c in edited.cells]
    assert new_ids[1:4] == ids[1:4], "unchanged cells keep their ids"
    assert new_ids[0] != ids[0] and len(set(new_ids)) == 5
    nbformat.validate(edited)


def _pair(tmp_path, *sources, checked_output=None):
    """A notebooks/ folder with nb.ipynb (code cells `sources`) and its percent script, as nbsync writes them."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = _notebook(*sources)
    nb.metadata = {"kernelspec": nbsync.KERNELSPEC, "language_info": {"name": "python"}}
    target = folder / "nb.ipynb"
    nbsync.keep_cell_ids(nb, target)
    if checked_output is not None:
        cell = next(c for c in nb.cells if nbsync.is_checked(c))
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=checked_output)]
        cell.execution_count = 1
        cell.metadata["tags"] = ["keep_output"]
    nbformat.write(nb, target)
    nbsync.pair.write_script(target)
    return target, nbsync.pair.script_for(target)


def test_sync_from_the_script_writes_the_notebook_and_keeps_checked_outputs(tmp_path):
    target, script = _pair(tmp_path, "a = 1", "# NBVAL_CHECK_OUTPUT\nprint(a)", checked_output="1\n")
    script.write_text(script.read_text().replace("a = 1", "a = 1  # one"))
    nbsync.sync(script, execute="never")
    cells = nbformat.read(target, as_version=4).cells
    assert cells[0].source == "a = 1  # one"
    assert cells[1].outputs[0]["text"] == "1\n", "an unchanged checked cell keeps its output without a run"
    assert nbsync.pair.check([target]) == [], "the pair agrees after a sync"
    assert script.stat().st_mtime >= target.stat().st_mtime, "the script is written last (never the outdated one)"


def test_sync_from_the_notebook_rewrites_the_script(tmp_path):
    target, script = _pair(tmp_path, "a = 1", "print(a)")
    nb = nbformat.read(target, as_version=4)
    nb.cells[0].source = "a = 2"
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]  # as JupyterLab saves it
    nbformat.write(nb, target)
    nbsync.sync(target, execute="never")
    assert "a = 2" in script.read_text()
    assert nbformat.read(target, as_version=4).cells[1].outputs == [], "outputs of unchecked cells are stripped"


def test_a_stale_script_does_not_overwrite_a_newer_notebook(tmp_path):
    target, script = _pair(tmp_path, "a = 1")
    nb = nbformat.read(target, as_version=4)
    nb.cells[0].source = "a = 2  # edited in JupyterLab"
    nbformat.write(nb, target)
    os.utime(script, (time.time() - 60, time.time() - 60))
    with pytest.raises(SystemExit, match="nb.ipynb is newer than nb.py"):
        nbsync.sync(script, execute="never")
    assert "edited in JupyterLab" in target.read_text(), "the notebook was left alone"
    nbsync.sync(script, execute="never", force=True)
    assert "edited in JupyterLab" not in target.read_text(), "--force lets the script win"
