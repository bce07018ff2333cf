"""What was handed in: finding the notebooks to grade, reading them, and noticing edited test cells.

- `find_submissions` maps student/ (your own notebooks) or a class folder in nbgrader's layout
  to {(student, assignment): notebook}, and names every notebook nbgrader would skip
  (`00_start_here (1).ipynb`, a notebook one folder too high) instead of ignoring it;
- `read_notebook` turns a corrupt file into one clear line;
- `tampering` compares each locked test cell of a submission with the student version it
  came from (nbgrader's checksum, by grade id). nbgrader's own check compares with the source
  notebook, hidden tests included, so it warned about every untouched submission: that is
  why `QuietOverwriteCells` keeps nbgrader's repair (the original cell put back) without
  its warning, and the notes from `tampering` say what happened;
- `put_back` returns a deleted test cell to its place before nbgrader grades the notebook.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from nbgrader.preprocessors import OverwriteCells
from nbgrader.utils import compute_checksum

SELF = "me"  # the student id used for your own notebooks


class QuietOverwriteCells(OverwriteCells):
    """nbgrader's OverwriteCells (puts the source's test cells back, hidden tests included), without its warnings.

    nbgrader compares each locked cell with the *source* version, hidden tests included, so its
    "checksum has changed" warning fired on every untouched submission: the student version
    never had the hidden tests. `tampering` compares with the student version instead.
    """

    def report_change(self, name, attr, old, new):
        self.log.debug("cell %s: %s differs from the source (restored)", name, attr)


def _checksum(cell) -> str:
    """nbgrader's checksum of a cell, also for a source stored as a list of lines (as in the JSON)."""
    cell = copy.deepcopy(cell)
    if isinstance(cell.get("source"), list):
        cell.source = "".join(cell.source)
    return compute_checksum(cell)


def tampering(release, submitted, source=None) -> dict[str, str]:
    """{grade_id: what happened} for each test cell of the student version deleted or changed in `submitted`.

    A test cell equal to the one in `source` (the instructor's notebook, hidden tests included)
    is not a change: that is what grading runs anyway (an instructor checking the solutions).
    """
    mine: dict[str | None, object] = {}
    for cell in submitted.cells:
        mine.setdefault(_grade_id(cell), cell)
    originals = {_grade_id(c): _checksum(c) for c in (source.cells if source else []) if _grade_id(c)}
    notes = {}
    for cell in release.cells:
        nbg = cell.metadata.get("nbgrader", {})
        if not (nbg.get("grade") and nbg.get("locked")):
            continue
        gid = nbg["grade_id"]
        if gid not in mine:
            notes[gid] = "this test cell was missing from the submission: the original was put back and graded."
            continue
        try:
            same = _checksum(mine[gid]) in (_checksum(cell), originals.get(gid))
        except (AttributeError, KeyError, TypeError, ValueError):  # metadata edited beyond what a checksum reads
            same = False
        if not same:
            notes[gid] = "this test cell was changed in the submission: the original was put back and graded."
    return notes


def put_back(release, submitted, missing: list[str]) -> None:
    """Insert the student version of each missing test cell into `submitted`, after the cell it followed.

    nbgrader can do this too (OverwriteCells.add_missing_cells) but fails when the cell before
    is missing as well (a student who deleted a whole exercise); grading then puts the hidden
    tests back into the inserted cell as into any other.
    """
    for gid in missing:
        position = {_key(c): i for i, c in enumerate(submitted.cells) if _key(c)}
        at = next(i for i, c in enumerate(release.cells) if _grade_id(c) == gid)
        before = next((_key(c) for c in reversed(release.cells[:at]) if _key(c) in position), None)
        submitted.cells.insert(position[before] + 1 if before else 0, copy.deepcopy(release.cells[at]))


def _key(cell) -> str | None:
    """What finds a cell of the student version again in a submission: its grade id, else its cell id."""
    return _grade_id(cell) or cell.get("id")


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def read_notebook(nb: Path, label: str) -> tuple[nbformat.NotebookNode | None, str]:
    """(the notebook at `nb`, "") or (None, one line saying why it cannot be graded)."""
    try:
        return nbformat.read(nb, as_version=4), ""
    except Exception as e:  # nbformat raises JSON, validation and unicode errors alike
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        return None, f"{label}: not a readable notebook ({reason}); not graded, no feedback page"


def find_submissions(
    student_dir: Path | None, class_dir: Path | None, known: list[str]
) -> tuple[dict[tuple[str, str], Path], list[str], list[str]]:
    """({(student, assignment): notebook}, skipped, problems).

    skipped: notebooks nbgrader would ignore beside a graded one; problems: a student whose
    only copy of an assignment is named so that nbgrader would ignore it (nothing graded).
    """
    found: dict[tuple[str, str], Path] = {}
    near: dict[tuple[str, str], list[Path]] = {}  # "00_start_here (1).ipynb": the right name, not exactly
    if class_dir is not None:
        for nb in sorted(class_dir.rglob("*.ipynb")):
            rel = nb.relative_to(class_dir)
            if ".ipynb_checkpoints" in rel.parts:
                continue
            if len(rel.parts) == 3 and rel.parts[1] in known and nb.stem == rel.parts[1]:
                found[(rel.parts[0], rel.parts[1])] = nb
            elif aid := next((a for a in known if a in rel.parts or nb.name.startswith(a)), None):
                near.setdefault((rel.parts[0] if len(rel.parts) > 1 else "?", aid), []).append(nb)
    elif student_dir is not None and student_dir.is_dir():
        for nb in sorted(student_dir.glob("*.ipynb")):
            if nb.stem in known:
                found[(SELF, nb.stem)] = nb
            elif aid := next((a for a in known if nb.name.startswith(a)), None):
                near.setdefault((SELF, aid), []).append(nb)
    root = class_dir if class_dir is not None else student_dir
    skipped, problems = [], []
    for (student, aid), paths in near.items():
        names = ", ".join(repr(str(p.relative_to(root))) for p in paths)
        where = f"{student}/{aid}/{aid}.ipynb" if class_dir is not None else f"{aid}.ipynb"
        if (student, aid) in found:
            skipped.append(f"{names}: only {where} is graded (nbgrader skips other names)")
        else:
            problems.append(f"{student}/{aid}: no {where}, only {names}: rename it to grade it")
    return found, skipped, problems
