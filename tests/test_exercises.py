"""Every exercise of every notebook, discovered from nbgrader metadata, checked without a kernel.

For each graded test cell, its answer cell is the nearest solution cell above it. In a
namespace prepared by the notebook's `parameters` and `setup` cells (SMOKE = True):
- the solution passes the tests (visible and hidden);
- the student version (nbgrader's ClearSolutions / ClearHiddenTests) fails its visible tests;
- every wrong answer in tests/wrong_answers/<notebook>/<answer grade_id>/*.py (at least
  two) fails, and the message contains the text after `# expect:` on its first line.
So a test cell may use only what those two cells and its answer cell define.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest
from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions
from notebook_runner import NOTEBOOKS, ROOT

WRONG = ROOT / "tests" / "wrong_answers"


def exercises(path: Path):
    """(answer cell, test cell) pairs of a notebook."""
    cells = nbformat.read(path, as_version=4).cells
    pairs, answer = [], None
    for c in cells:
        meta = c.metadata.get("nbgrader", {})
        if meta.get("solution"):
            answer = c
        if meta.get("grade") and c.cell_type == "code":
            assert answer is not None, f"{path.name}: graded cell {meta['grade_id']} has no answer cell above it"
            pairs.append((answer, c))
    return cells, pairs


CASES = [
    (p, a.metadata["nbgrader"]["grade_id"], t.metadata["nbgrader"]["grade_id"])
    for p in NOTEBOOKS
    for a, t in exercises(p)[1]
]
_namespaces: dict[Path, dict] = {}


def base_namespace(path: Path) -> dict:
    """Globals after the parameters and setup cells, SMOKE forced on; computed once per notebook."""
    if path not in _namespaces:
        cells = nbformat.read(path, as_version=4).cells
        ns: dict = {"__name__": "__main__"}
        for tag in ("parameters", "setup"):
            for c in cells:
                if tag in c.metadata.get("tags", []):
                    exec(compile(c.source, f"<{path.stem}:{tag}>", "exec"), ns)
                    if tag == "parameters":
                        ns["SMOKE"] = True
        _namespaces[path] = ns
    return dict(_namespaces[path])


def student_version(nb_path: Path) -> dict[str, str]:
    """grade_id -> source of each nbgrader cell after nbgrader's own student-version preprocessors."""
    nb = nbformat.read(nb_path, as_version=4)
    resources = {}
    nb, resources = ClearSolutions().preprocess(copy.deepcopy(nb), resources)
    nb, resources = ClearHiddenTests().preprocess(nb, resources)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells if "nbgrader" in c.metadata}


def run(ns: dict, source: str, label: str) -> None:
    exec(compile(source, label, "exec"), ns)


def cell_source(path, grade_id):
    return next(
        c.source
        for c in nbformat.read(path, as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id
    )


@pytest.mark.parametrize("path,answer_id,test_id", CASES, ids=[f"{p.stem}:{t}" for p, _, t in CASES])
def test_solution_passes(path, answer_id, test_id):
    ns = base_namespace(path)
    run(ns, cell_source(path, answer_id), answer_id)
    run(ns, cell_source(path, test_id), test_id)


@pytest.mark.parametrize("path,answer_id,test_id", CASES, ids=[f"{p.stem}:{t}" for p, _, t in CASES])
def test_student_version_fails(path, answer_id, test_id):
    student = student_version(path)
    assert "### BEGIN SOLUTION" not in student[answer_id] and "BEGIN HIDDEN TESTS" not in student[test_id]
    ns = base_namespace(path)
    run(ns, student[answer_id], answer_id)
    with pytest.raises((AssertionError, NotImplementedError)):
        run(ns, student[test_id], test_id)


@pytest.mark.parametrize("path,answer_id,test_id", CASES, ids=[f"{p.stem}:{t}" for p, _, t in CASES])
def test_wrong_answers_fail_with_a_diagnosis(path, answer_id, test_id):
    folder = WRONG / path.stem / answer_id
    wrong = sorted(folder.glob("*.py"))
    assert len(wrong) >= 2, f"add at least two plausible wrong answers to {folder.relative_to(ROOT)}/"
    for w in wrong:
        first = w.read_text().splitlines()[0]
        assert first.startswith("# expect:"), f"{w.name}: first line must be '# expect: <part of the message>'"
        expected = first.split(":", 1)[1].strip()
        ns = base_namespace(path)
        run(ns, w.read_text(), str(w))
        with pytest.raises(AssertionError) as err:
            run(ns, cell_source(path, test_id), test_id)
        assert expected in str(err.value), f"{w.relative_to(ROOT)}: message {str(err.value)!r} lacks {expected!r}"
