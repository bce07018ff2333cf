"""scripts/nbsync.py keeps cell ids stable, so re-syncing a notebook does not rewrite its whole diff."""
import importlib.util
from pathlib import Path

import nbformat

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "nbsync.py"
spec = importlib.util.spec_from_file_location("nbsync", SCRIPT)
nbsync = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nbsync)


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
