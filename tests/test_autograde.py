"""The grading pipeline end to end with real nbgrader: student versions, grading, feedback, isolation."""

import csv
import html
import json
import re
import shutil
import sys

import nbformat
import pytest
from course_utils.tools import autograde, feedback
from course_utils.tools.submissions import find_submissions, put_back
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


def test_grading_a_class_scores_hides_hidden_tests_and_writes_csv(course, tmp_path, capfd):
    _student(course)
    student_nb = nbformat.read(course["student_dir"] / SOFTMAX_NB.name, as_version=4)
    solution_nb = nbformat.read(SOFTMAX_NB, as_version=4)
    unstable = nbformat.read(course["student_dir"] / SOFTMAX_NB.name, as_version=4)
    _answer_and_tests(unstable)[0].source = "def softmax(x):\n    e = x.exp()\n    return e / e.sum(-1, keepdim=True)\n"
    changed = nbformat.read(course["student_dir"] / SOFTMAX_NB.name, as_version=4)
    _answer_and_tests(changed)[1].source = "pass  # no tests, full marks?"
    deleted = nbformat.read(course["student_dir"] / SOFTMAX_NB.name, as_version=4)
    deleted.cells.remove(_answer_and_tests(deleted)[1])
    class_dir = tmp_path / "submitted"
    _submit(class_dir, "alice", solution_nb)
    _submit(class_dir, "bob", student_nb)
    nbformat.write(student_nb, class_dir / "bob" / "00_start_here" / "00_start_here (1).ipynb")  # nbgrader skips it
    _submit(class_dir, "carol", unstable)
    _submit(class_dir, "mallory", changed)
    _submit(class_dir, "trudy", deleted)
    capfd.readouterr()
    grading = autograde.grade(
        class_dir=class_dir, course=course["course"], notebooks=course["notebooks"], out=course["out"]
    )
    printed = capfd.readouterr()
    assert printed.out == "" and printed.err == "", "kernel chatter reached the terminal"
    assert grading.problems == []
    assert grading.skipped == [
        "'bob/00_start_here/00_start_here (1).ipynb': only bob/00_start_here/00_start_here.ipynb is graded (nbgrader skips other names)"
    ]
    got = {s.student: (s.score, s.max_score) for s in grading.scores}
    assert got == {"alice": (2, 2), "bob": (0, 2), "carol": (0, 2), "mallory": (0, 2), "trudy": (0, 2)}
    # the student version untouched: no note; the test cell changed or deleted: put back, graded, reported
    notes = {s.student: s.note for s in grading.scores}
    assert notes["alice"] == notes["bob"] == notes["carol"] == ""  # alice: the instructor's own test cell
    assert "changed" in notes["mallory"] and "missing" in notes["trudy"]
    rows = list(csv.DictReader(open(course["out"] / "grades.csv")))
    assert {(r["student"], r["exercise"], r["score"]) for r in rows} == {
        ("alice", "softmax-tests", "2"),
        ("bob", "softmax-tests", "0"),
        ("carol", "softmax-tests", "0"),
        ("mallory", "softmax-tests", "0"),
        ("trudy", "softmax-tests", "0"),
    }
    assert {r["title"] for r in rows} == {"Warm-up exercise: a numerically stable softmax"}
    assert "changed" in next(r["note"] for r in rows if r["student"] == "mallory")
    # carol passes the visible tests and fails a hidden one: her feedback names the mistake
    page_path = course["out"] / "feedback" / "carol" / "00_start_here.html"
    assert grading.pages[("carol", "00_start_here")] == page_path
    raw = page_path.read_text()
    page = html.unescape(raw)
    assert "not numerically stable" in page
    hidden = (
        _answer_and_tests(solution_nb)[1].source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
    )
    for line in filter(lambda l: len(l.strip()) > 12, hidden.splitlines()):
        assert line.strip() not in page, f"feedback reveals a hidden test line: {line.strip()!r}"
    assert "BEGIN HIDDEN" not in page  # the hidden tests are not shown
    assert "GradingError: softmax(x) is not right (on rows of very different scales)" in page  # message, no traceback
    # the contents list names the exercise; no server path; scripts only from the folder beside the pages
    assert "Warm-up exercise: a numerically stable softmax</a>, 0 / 2" in page and "Test cell" not in page
    assert "Tests of Warm-up exercise: a numerically stable softmax" in page and "Grade cell" not in page
    for private in (str(tmp_path), str(ROOT), sys.prefix):
        assert private not in raw, f"the page shows a path of the grading machine: {private}"
    assert not re.search(r'<script[^>]+src="(?!\.\./vendor/)', raw), "a script from outside the feedback folder"
    for student in got:
        size = (course["out"] / "feedback" / student / "00_start_here.html").stat().st_size
        assert size < 1_000_000, f"{student}: feedback page of {size} bytes"
    assert "tampered with" in (course["out"] / "feedback" / "mallory" / "00_start_here.html").read_text()
    table = autograde.summary(grading)
    assert "Warm-up exercise: a numerically stable softmax" in table and "TAMPERED" in table and "NOT GRADED" in table
    print(table)


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
        nbformat.v4.new_markdown_cell("## Exercises\n\n### Exercise 1: double (1 point)\n\nWrite `double`."),
        nbformat.v4.new_code_cell(
            "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
            metadata=meta("double-answer", False),
        ),
        nbformat.v4.new_code_cell("assert double(3) == 6", metadata=meta("double-tests", True, 1)),
        nbformat.v4.new_markdown_cell("### Exercise 2: square"),
        nbformat.v4.new_code_cell(
            "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION",
            metadata=meta("square-answer", False),
        ),
        nbformat.v4.new_code_cell("assert square(3) == 9", metadata=meta("square-tests", True, 1)),
    ]
    nbformat.write(nb, path)
    return nb


def test_a_crash_an_exit_or_an_infinite_loop_costs_only_its_exercise(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    nb = _two_exercise_notebook(nbs / "90_two.ipynb")
    class_dir = tmp_path / "submitted"
    for student, double_src in {
        "loops": "def double(x):\n    while True:\n        pass",
        "raises": "raise RuntimeError('oops')\ndef double(x):\n    return 2 * x",
        "hangs": "import time\ntime.sleep(3600)",
        "exits": "import sys\nsys.exit()\ndef double(x):\n    return 2 * x",
    }.items():
        sub = nbformat.from_dict(json.loads(nbformat.writes(nb)))
        sub.cells[1].source = double_src
        (class_dir / student / "90_two").mkdir(parents=True)
        nbformat.write(sub, class_dir / student / "90_two" / "90_two.ipynb")
    grading = autograde.grade(
        class_dir=class_dir, course=tmp_path / "nbgrader", notebooks=nbs, out=tmp_path / "grading", timeout=5
    )
    assert grading.problems == []
    got = {(s.student, s.exercise): s.score for s in grading.scores}
    for student in ("loops", "raises", "hangs", "exits"):
        assert got[(student, "double-tests")] == 0, student
        assert got[(student, "square-tests")] == 1, f"{student}: the other exercise must still be graded"
    # in notebook order, titled by the heading above each exercise
    assert [(s.exercise, s.title) for s in grading.scores[:2]] == [
        ("double-tests", "Exercise 1: double"),
        ("square-tests", "Exercise 2: square"),
    ]
    page = lambda student: html.unescape((tmp_path / "grading" / "feedback" / student / "90_two.html").read_text())
    for student in ("loops", "hangs"):  # stopped in the test cell, in the answer cell
        assert "ran longer than 5 s, the limit for one cell" in page(student), student
    assert "this cell called sys.exit()" in page("exits")


def test_grading_nothing_or_garbage_fails_loudly(course, tmp_path):
    grading = autograde.grade(
        student_dir=tmp_path / "empty", course=course["course"], notebooks=course["notebooks"], out=course["out"]
    )
    assert grading.scores == [] and "nothing to grade" in grading.problems[0]
    class_dir = tmp_path / "submitted"
    (class_dir / "eve" / "00_start_here").mkdir(parents=True)
    (class_dir / "eve" / "00_start_here" / "00_start_here.ipynb").write_text("{ not json")
    stale = course["out"] / "feedback" / "eve" / "00_start_here.html"  # from an earlier run
    stale.parent.mkdir(parents=True)
    stale.write_text("an old page")
    grading = autograde.grade(
        class_dir=class_dir, course=course["course"], notebooks=course["notebooks"], out=course["out"]
    )
    assert len(grading.problems) == 1 and grading.problems[0].startswith("eve/00_start_here: not a readable notebook")
    assert grading.pages == {} and "see feedback" not in autograde.summary(grading)
    assert not stale.exists(), "a page from an earlier run would pass for this one's"
    assert autograde.main(["grade", "--class-dir", str(tmp_path / "nope")]) == 1


# Below: the pieces around nbgrader, without kernels.


def test_tampering_compares_with_the_student_version(course):
    release = nbformat.read(autograde.build_release(course["course"], course["notebooks"])["00_start_here"], 4)
    untouched = nbformat.from_dict(json.loads(nbformat.writes(release)))
    _answer_and_tests(untouched)[0].source = "def softmax(x):\n    return x.softmax(-1)"  # answers are free to change
    assert autograde.tampering(release, untouched) == {}
    changed = nbformat.from_dict(json.loads(nbformat.writes(release)))
    _answer_and_tests(changed)[1].metadata["nbgrader"]["points"] = 20
    assert "changed" in autograde.tampering(release, changed)["softmax-tests"]
    deleted = nbformat.from_dict(json.loads(nbformat.writes(release)))
    deleted.cells.remove(_answer_and_tests(deleted)[1])
    assert "missing" in autograde.tampering(release, deleted)["softmax-tests"]
    # a whole exercise deleted (nbgrader's own repair fails there): the test cell goes back where it was
    wiped = nbformat.from_dict(json.loads(nbformat.writes(release)))
    answer, tests = _answer_and_tests(wiped)
    at = wiped.cells.index(answer)
    wiped.cells.remove(answer)
    wiped.cells.remove(tests)
    put_back(release, wiped, ["softmax-tests"])
    assert wiped.cells[at].metadata["nbgrader"]["grade_id"] == "softmax-tests"
    assert len(wiped.cells) == len(release.cells) - 1


def test_notebooks_nbgrader_would_skip_are_named(tmp_path):
    known = ["00_start_here", "01_attention"]
    student = tmp_path / "student"
    student.mkdir()
    for name in ("00_start_here.ipynb", "00_start_here (1).ipynb", "01_attention-Copy1.ipynb", "scratch.ipynb"):
        (student / name).write_text("{}")
    found, skipped, problems = find_submissions(student, None, known)
    assert found == {("me", "00_start_here"): student / "00_start_here.ipynb"}
    assert skipped == ["'00_start_here (1).ipynb': only 00_start_here.ipynb is graded (nbgrader skips other names)"]
    assert problems == [
        "me/01_attention: no 01_attention.ipynb, only '01_attention-Copy1.ipynb': rename it to grade it"
    ]
    class_dir = tmp_path / "class"
    (class_dir / "ann" / "00_start_here").mkdir(parents=True)
    (class_dir / "ann" / "00_start_here.ipynb").write_text("{}")  # one folder too high
    found, skipped, problems = find_submissions(None, class_dir, known)
    assert found == {} and problems == [
        "ann/00_start_here: no ann/00_start_here/00_start_here.ipynb, only 'ann/00_start_here.ipynb': rename it to grade it"
    ]


def test_grading_one_notebook_updates_its_rows_of_grades_csv(tmp_path):
    path = tmp_path / "grades.csv"
    old = [autograde.Score("me", a, f"{a}-tests", 1, 2, "T") for a in ("00_start_here", "01_attention")]
    autograde._merge_csv(path, old, {"00_start_here", "01_attention"})
    autograde._merge_csv(path, [autograde.Score("me", "01_attention", "01_attention-tests", 2, 2)], {"01_attention"})
    rows = {r["assignment"]: r["score"] for r in csv.DictReader(open(path))}
    assert rows == {"00_start_here": "1", "01_attention": "2"}


def test_make_passes_the_exit_code_on():
    """README promises a failing exit status from `make grade`: no recipe line may swallow it."""
    recipes = ROOT.joinpath("Makefile").read_text().split("\ngrade:")[1].split("\n\n")[0]
    recipes += ROOT.joinpath("Makefile").read_text().split("\nstudent:")[1].split("\n\n")[0]
    for line in recipes.splitlines()[1:]:
        assert not line.lstrip("\t@").startswith("-") and "|| true" not in line and "| " not in line, line
    assert "exit status" in ROOT.joinpath("README.md").read_text().split("## For instructors")[1].split("\n## ")[0]


def test_feedback_page_pieces(tmp_path):
    """Titles from headings, local MathJax only, no paths of this machine, big figures left out."""
    nb = _two_exercise_notebook(tmp_path / "90_two.ipynb")
    assert feedback.exercise_titles(nb) == {"double-tests": "Exercise 1: double", "square-tests": "Exercise 2: square"}
    cdn = '<script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX"> </script>'
    raw = f"<html><head>{cdn}</head><body>{cdn}<pre>File {tmp_path}/x.py and {sys.prefix}/lib</pre></body></html>"
    page = feedback.finish_page(raw, "../vendor/mathjax/MathJax.js", [tmp_path])
    assert page.count("<script") == 1 and '<script src="../vendor/mathjax/MathJax.js">' in page
    assert str(tmp_path) not in page and sys.prefix not in page and "white-space: pre-wrap" in page
    assert "<script" not in feedback.finish_page(raw, None, [])  # no MathJax copy: formulas stay TeX, nothing loads
    big = nbformat.v4.new_output("display_data", data={"image/png": "A" * 400_000})
    nb.cells[1].outputs = [big, nbformat.v4.new_output("display_data", data={"image/png": "B" * 400_000})]
    feedback._keep_under(nb, 600_000)
    assert [("data" in out) for out in nb.cells[1].outputs] == [False, True]
