"""The grading pipeline end to end with real nbgrader: student versions, grading, feedback, isolation."""

import csv
import html
import json
import shutil

import nbformat
import pytest
from course_utils.tools import autograde
from notebook_runner import ROOT

pytestmark = pytest.mark.notebook  # starts kernels

SOFTMAX_NB = ROOT / "notebooks" / "00_start_here.ipynb"


def _answer_and_tests(nb):
    cells = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}
    return cells["softmax-answer"], cells["softmax-tests"]


@pytest.fixture
def course(tmp_path):
    """A private notebooks/ (only notebook 00), course root, student and output folders."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    shutil.copyfile(SOFTMAX_NB, nbs / SOFTMAX_NB.name)
    return {
        "notebooks": nbs,
        "course": tmp_path / "nbgrader",
        "student_dir": tmp_path / "student",
        "out": tmp_path / "grading",
    }


def _student(course):
    return autograde.make_student(course["student_dir"], course["course"], course["notebooks"])


def test_make_student_strips_solutions_and_never_overwrites_edits(course):
    name = SOFTMAX_NB.name
    assert _student(course) == {name: "created"}
    mine = course["student_dir"] / name
    text = mine.read_text()
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text and "1001.0" not in text
    assert "raise NotImplementedError" in text
    assert _student(course) == {name: "unchanged"}
    # the source changes; the untouched copy follows it
    nb = nbformat.read(course["notebooks"] / name, as_version=4)
    nb.cells[0].source += "\n\nA new sentence."
    nbformat.write(nb, course["notebooks"] / name)
    assert _student(course)[name].startswith("updated")
    assert "A new sentence." in mine.read_text()
    # a person edits their copy: it survives, even when the source changes again
    mine.write_text(mine.read_text().replace("raise NotImplementedError()", "return x.softmax(-1)"))
    edited = mine.read_text()
    nb.cells[0].source += " And another."
    nbformat.write(nb, course["notebooks"] / name)
    assert _student(course)[name].startswith("kept")
    assert mine.read_text() == edited


def _submit(class_dir, student, nb):
    d = class_dir / student / "00_start_here"
    d.mkdir(parents=True)
    nbformat.write(nb, d / "00_start_here.ipynb")


def test_grading_a_class_scores_hides_hidden_tests_and_writes_csv(course, tmp_path):
    _student(course)
    student_nb = nbformat.read(course["student_dir"] / SOFTMAX_NB.name, as_version=4)
    solution_nb = nbformat.read(SOFTMAX_NB, as_version=4)
    unstable = nbformat.read(course["student_dir"] / SOFTMAX_NB.name, as_version=4)
    _answer_and_tests(unstable)[0].source = "def softmax(x):\n    e = x.exp()\n    return e / e.sum(-1, keepdim=True)\n"
    class_dir = tmp_path / "submitted"
    _submit(class_dir, "alice", solution_nb)
    _submit(class_dir, "bob", student_nb)
    _submit(class_dir, "carol", unstable)
    scores, problems = autograde.grade(
        class_dir=class_dir, course=course["course"], notebooks=course["notebooks"], out=course["out"]
    )
    assert problems == []
    got = {s.student: (s.score, s.max_score) for s in scores}
    assert got == {"alice": (2, 2), "bob": (0, 2), "carol": (0, 2)}
    rows = list(csv.DictReader(open(course["out"] / "grades.csv")))
    assert {(r["student"], r["exercise"], r["score"]) for r in rows} == {
        ("alice", "softmax-tests", "2"),
        ("bob", "softmax-tests", "0"),
        ("carol", "softmax-tests", "0"),
    }
    # carol passes the visible tests and fails a hidden one: her feedback names the mistake
    page = html.unescape((course["out"] / "feedback" / "carol" / "00_start_here.html").read_text())
    assert "not numerically stable" in page
    hidden = (
        _answer_and_tests(solution_nb)[1].source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
    )
    for line in filter(lambda l: len(l.strip()) > 12, hidden.splitlines()):
        assert line.strip() not in page, f"feedback reveals a hidden test line: {line.strip()!r}"
    assert "BEGIN HIDDEN" not in page and "GradingError: softmax of large scores" in page  # message kept, traceback cut
    print(autograde.summary(scores, problems))


def _two_exercise_notebook(path):
    """A notebook with two independent exercises, for the isolation test."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    meta = lambda gid, grade, points=0: {
        "nbgrader": {
            "grade": grade,
            "grade_id": gid,
            "locked": grade,
            "schema_version": 3,
            "solution": not grade,
            "task": False,
            **({"points": points} if grade else {}),
        }
    }
    nb.cells = [
        nbformat.v4.new_code_cell(
            "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
            metadata=meta("double-answer", False),
        ),
        nbformat.v4.new_code_cell("assert double(3) == 6", metadata=meta("double-tests", True, 1)),
        nbformat.v4.new_code_cell(
            "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION",
            metadata=meta("square-answer", False),
        ),
        nbformat.v4.new_code_cell("assert square(3) == 9", metadata=meta("square-tests", True, 1)),
    ]
    nbformat.write(nb, path)
    return nb


def test_a_crash_or_an_infinite_loop_costs_only_its_exercise(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    nb = _two_exercise_notebook(nbs / "90_two.ipynb")
    class_dir = tmp_path / "submitted"
    for student, double_src in {
        "loops": "def double(x):\n    while True:\n        pass",
        "raises": "raise RuntimeError('oops')\ndef double(x):\n    return 2 * x",
        "hangs": "import time\ntime.sleep(3600)",
    }.items():
        sub = nbformat.from_dict(json.loads(nbformat.writes(nb)))
        sub.cells[0].source = double_src
        (class_dir / student / "90_two").mkdir(parents=True)
        nbformat.write(sub, class_dir / student / "90_two" / "90_two.ipynb")
    scores, problems = autograde.grade(
        class_dir=class_dir, course=tmp_path / "nbgrader", notebooks=nbs, out=tmp_path / "grading", timeout=5
    )
    assert problems == []
    got = {(s.student, s.exercise): s.score for s in scores}
    for student in ("loops", "raises", "hangs"):
        assert got[(student, "double-tests")] == 0, student
        assert got[(student, "square-tests")] == 1, f"{student}: the other exercise must still be graded"


def test_grading_nothing_or_garbage_fails_loudly(course, tmp_path):
    scores, problems = autograde.grade(
        student_dir=tmp_path / "empty", course=course["course"], notebooks=course["notebooks"], out=course["out"]
    )
    assert scores == [] and "nothing to grade" in problems[0]
    class_dir = tmp_path / "submitted"
    (class_dir / "eve" / "00_start_here").mkdir(parents=True)
    (class_dir / "eve" / "00_start_here" / "00_start_here.ipynb").write_text("{ not json")
    scores, problems = autograde.grade(
        class_dir=class_dir, course=course["course"], notebooks=course["notebooks"], out=course["out"]
    )
    assert problems and "eve/00_start_here" in problems[0]
    assert autograde.main(["grade", "--class-dir", str(tmp_path / "nope")]) == 1
