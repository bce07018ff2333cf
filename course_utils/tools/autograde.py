"""Student versions and one-command grading, on top of nbgrader.

    python -m course_utils.tools.autograde student              # make student
    python -m course_utils.tools.autograde grade                # make grade: your notebooks in student/
    python -m course_utils.tools.autograde grade --class-dir D  # a class: D/<student>/<assignment>/<notebook>.ipynb

nbgrader does the real work (it is what universities use): `generate_assignment` strips
solutions and hidden tests, `autograde` runs a notebook with the hidden tests put back,
`generate_feedback` writes an HTML page. This module is only the glue nbgrader lacks:
- every notebook in notebooks/ is one assignment of one notebook, in a course root under
  build/nbgrader/ that is rebuilt from notebooks/ each time (notebooks/ stays the source);
- `student` never overwrites a notebook in student/ that a person changed: it records the
  SHA-256 of what it wrote in student/.generated.json and only replaces files that still match;
- a test cell a submission changed or deleted is put back (`put_back`, nbgrader's OverwriteCells) and
  reported: `tampering` compares it with the student version, where nbgrader compared it with
  the source (hidden tests included) and so warned about every untouched submission;
- the feedback page (course_utils.tools.feedback) never shows hidden tests, names each
  exercise, and works offline;
- grading fails loudly (exit code 1 and a line in the summary) when nbgrader itself failed,
  matched nothing or met a notebook it cannot read, where nbgrader's command line exits 0;
  a notebook nbgrader would skip (`00_start_here (1).ipynb`) is named, not ignored;
- the terminal shows the summary only: what kernels print goes to build/nbgrader/grading.log.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import nbgrader
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI
from nbgrader.converters import GenerateFeedback
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearHiddenTests,
    ClearOutput,
    DeduplicateIds,
    GetGrades,
    OverwriteKernelspec,
)
from nbgrader.utils import capture_log, temp_attrs
from traitlets.config import Config

from course_utils.paths import NOTEBOOKS_DIR, ROOT, STUDENT_DIR, build_root
from course_utils.tools.feedback import NOTES_KEY, FeedbackNotes, exercise_titles, finish_page, vendor_mathjax
from course_utils.tools.submissions import QuietOverwriteCells, find_submissions, put_back, read_notebook, tampering

NOTEBOOKS = NOTEBOOKS_DIR
STUDENT = STUDENT_DIR
COURSE = build_root() / "nbgrader"
OUT = build_root() / "grading"
MANIFEST = ".generated.json"
TEMPLATES = ROOT / "templates"
# nbgrader's feedback page, which templates/course_feedback extends
NBGRADER_TEMPLATES = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assignments(notebooks: Path = NOTEBOOKS) -> list[str]:
    """Notebook stems that hold nbgrader exercises, e.g. ['00_start_here', '01_attention']."""
    found = []
    for nb in sorted(notebooks.glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        if any(c.get("metadata", {}).get("nbgrader", {}).get("grade") for c in cells):
            found.append(nb.stem)
    return found


def _config(course: Path, timeout: int) -> Config:
    """nbgrader's settings: the course root, the per-cell limit, our cell check and our feedback page."""
    c = Config()
    c.CourseDirectory.root = str(course)
    c.CourseDirectory.course_id = "transformers-course"
    c.Execute.timeout = timeout  # per cell: a student's infinite loop costs that exercise only
    c.Execute.interrupt_on_timeout = True
    # nbgrader leaves autograded copies read-only (444) and `grade` then writes its notes into them: only root
    # writes through 444 (a hub's instructor is not root). They live in the instructor's course root: 644 gives
    # nothing away. nbgrader reads these digits as octal.
    c.Autograde.permissions = 644
    c.Autograde.sanitize_preprocessors = [
        ClearOutput,
        DeduplicateIds,
        OverwriteKernelspec,
        QuietOverwriteCells,
        CheckCellMetadata,
    ]
    c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, FeedbackNotes, CSSHTMLHeaderPreprocessor]
    c.FeedbackNotes.timeout = timeout
    c.HTMLExporter.template_name = "course_feedback"  # templates/course_feedback, on top of nbgrader's
    c.HTMLExporter.template_file = "feedback_page.html.j2"  # it extends nbgrader's index.html.j2
    c.HTMLExporter.extra_template_basedirs = [str(TEMPLATES), str(NBGRADER_TEMPLATES)]
    return c


def _api(course: Path, timeout: int = 120) -> NbGraderAPI:
    # nbgrader runs the `alembic` command of its own environment: make sure it is on PATH
    # even when this runs as .venv/bin/python without an activated venv.
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    config = _config(course, timeout)
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


@contextlib.contextmanager
def _quiet(log: Path):
    """Send this process's (and so the kernels') stdout and stderr to `log` for a while.

    Kernels print "running over TCP without encryption" and C libraries print profiler
    messages straight to the file descriptors they inherit: only a redirect at that level
    keeps them out of the grading summary.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _check(result: dict, what: str) -> None:
    if not result.get("success"):
        raise RuntimeError(f"nbgrader failed to {what}:\n{result.get('log', '')}\n{result.get('error', '')}")


def build_release(course: Path = COURSE, notebooks: Path = NOTEBOOKS, only: list[str] | None = None) -> dict[str, Path]:
    """Copy notebooks/ into the nbgrader course as source/<id>/<id>.ipynb and generate the student versions.

    Returns {assignment id: path of the student version under release/}.
    """
    ids = [a for a in assignments(notebooks) if not only or a in only]
    if only and set(only) - set(ids):
        raise ValueError(
            f"no notebook with exercises named {sorted(set(only) - set(ids))}; known: {assignments(notebooks)}"
        )
    api = _api(course)
    released = {}
    for aid in ids:
        src = course / "source" / aid / f"{aid}.ipynb"
        src.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(notebooks / f"{aid}.ipynb", src)
        _check(api.generate_assignment(aid, force=True, create=True), f"generate the student version of {aid}")
        released[aid] = course / "release" / aid / f"{aid}.ipynb"
        if not released[aid].exists():
            raise RuntimeError(f"nbgrader reported success but wrote no {released[aid]}")
    return released


def make_student(
    student_dir: Path = STUDENT, course: Path = COURSE, notebooks: Path = NOTEBOOKS, only: list[str] | None = None
) -> dict[str, str]:
    """Write student versions into `student_dir`; never replace a notebook a person has changed.

    Returns {notebook file name: what happened}: created, updated, unchanged, or kept (edited by you).
    """
    released = build_release(course, notebooks, only)
    student_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = student_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    actions = {}
    for release in released.values():
        target = student_dir / release.name
        new = release.read_bytes()
        if not target.exists():
            action = "created"
        elif _sha(target) != manifest.get(target.name):
            actions[target.name] = "kept: you edited it (delete or rename it to get a fresh copy)"
            continue
        elif target.read_bytes() == new:
            actions[target.name] = "unchanged"
            continue
        else:
            action = "updated (you had not touched it)"
        target.write_bytes(new)
        manifest[target.name] = hashlib.sha256(new).hexdigest()
        actions[target.name] = action
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return actions


@dataclass
class Score:
    student: str
    assignment: str
    exercise: str  # the grade id of the test cell
    score: float
    max_score: float
    title: str = ""  # "Exercise 2: the decoder's mask", from the heading above the exercise
    note: str = ""  # what grading found wrong with the submitted test cell, if anything


@dataclass
class Grading:
    """What one `grade` run found: scores in exercise order, failures, files left out, pages written."""

    scores: list[Score] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # grading itself failed: exit code 1
    skipped: list[str] = field(default_factory=list)  # notebooks nbgrader would ignore, named
    pages: dict[tuple[str, str], Path] = field(default_factory=dict)  # (student, assignment) -> feedback page


def _merge_csv(path: Path, scores: list[Score], regraded: set[str]) -> None:
    """Write grades.csv: this run's rows, and the rows of assignments this run did not grade as they were."""
    fields = ["student", "assignment", "exercise", "title", "score", "max_score", "note"]
    kept = []
    if path.exists():
        with open(path, newline="") as f:
            kept = [r for r in csv.DictReader(f) if r.get("assignment") not in regraded]
    rows = kept + [
        {"student": s.student, "assignment": s.assignment, "exercise": s.exercise, "title": s.title}
        | {"score": f"{s.score:g}", "max_score": f"{s.max_score:g}", "note": s.note}
        for s in scores
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def grade(
    student_dir: Path = STUDENT,
    class_dir: Path | None = None,
    course: Path = COURSE,
    notebooks: Path = NOTEBOOKS,
    out: Path = OUT,
    timeout: int = 120,
    only: list[str] | None = None,
) -> Grading:
    """Autograde submissions, update out/grades.csv, write out/feedback/<student>/<assignment>.html.

    A problem is grading itself failing (a notebook nbgrader could not read or grade, nothing
    to grade); a wrong answer is a score, and a tampered test cell a score with a note.
    """
    warnings.filterwarnings("ignore", module="nbgrader")  # SQLAlchemy autoflush chatter from nbgrader's own queries
    released = build_release(course, notebooks, only)
    known = list(released)
    grading = Grading()
    subs, grading.skipped, grading.problems = find_submissions(student_dir, class_dir, known)
    if not subs:
        if not grading.problems:
            where = class_dir if class_dir else student_dir
            grading.problems.append(
                f"nothing to grade: no notebook named like {known[:2]}... found in {where} (run `make student` "
                "first, or check the class folder layout <student>/<assignment>/<assignment>.ipynb)"
            )
        return grading
    os.environ.setdefault("COURSE_SMOKE", "1")  # grading runs every notebook: small sizes, same tests
    os.environ.setdefault("COURSE_HEADLESS", "1")
    submitted = course / "submitted"
    if submitted.exists():
        shutil.rmtree(submitted)
    api = _api(course, timeout)
    feedback_dir = out / "feedback"
    mathjax = vendor_mathjax(feedback_dir)
    log = course / "grading.log"
    log.write_text("")  # what the kernels of this run printed
    titles = {aid: exercise_titles(nbformat.read(path, as_version=4)) for aid, path in released.items()}
    sources = {aid: nbformat.read(course / "source" / aid / f"{aid}.ipynb", as_version=4) for aid in released}
    notes: dict[tuple[str, str], dict[str, str]] = {}  # graded submissions: {grade_id: tampering note}
    for (student, aid), path in subs.items():
        page = feedback_dir / student / f"{aid}.html"
        page.unlink(missing_ok=True)  # a page of an earlier run must not pass for this one's
        nb, problem = read_notebook(path, f"{student}/{aid}")
        if nb is None:
            grading.problems.append(problem)
            continue
        release = nbformat.read(released[aid], as_version=4)
        tampered = tampering(release, nb, sources[aid])
        put_back(release, nb, [gid for gid, note in tampered.items() if "missing" in note])
        dest = submitted / student / aid / f"{aid}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest)
        with _quiet(log):
            result = api.autograde(aid, student, force=True, create=True)
        if not result.get("success"):
            last = (result.get("error") or result.get("log") or "").strip().splitlines()[-1:] or ["no message"]
            grading.problems.append(f"{student}/{aid}: nbgrader could not grade it: {last[0]} (log: {log})")
            continue
        notes[(student, aid)] = tampered
        autograded = course / "autograded" / student / aid / f"{aid}.ipynb"
        graded_nb = nbformat.read(autograded, as_version=4)
        graded_nb.metadata[NOTES_KEY] = tampered
        nbformat.write(graded_nb, autograded)
        html = course / "feedback" / student / aid / f"{aid}.html"
        html.unlink(missing_ok=True)
        with _quiet(log), temp_attrs(api.coursedir, assignment_id=aid, student_id=student):
            # what api.generate_feedback does, less its template_name = "feedback" (ours extends that one)
            app = GenerateFeedback(coursedir=api.coursedir, parent=api)
            app.force = True
            result = capture_log(app)
        if not result.get("success") or not html.exists():
            grading.problems.append(f"{student}/{aid}: graded, but nbgrader wrote no feedback page (log: {log})")
        else:
            page.parent.mkdir(parents=True, exist_ok=True)
            private = [course, out, path.parent, notebooks]
            page.write_text(finish_page(html.read_text(encoding="utf-8"), mathjax, private), encoding="utf-8")
            grading.pages[(student, aid)] = page
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student, aid in notes:
            try:
                grades = {g.name: g for g in gb.find_submission_notebook(aid, aid, student).grades}
            except MissingEntry:
                continue  # reported above as a problem
            order = list(titles[aid]) + sorted(set(grades) - set(titles[aid]))  # notebook order, as the exercises
            for gid in filter(grades.__contains__, order):
                g, note = grades[gid], notes[(student, aid)].get(gid, "")
                title = titles[aid].get(gid, gid)
                grading.scores.append(Score(student, aid, gid, float(g.score or 0), float(g.max_score), title, note))
    _merge_csv(out / "grades.csv", grading.scores, {aid for _, aid in subs})
    return grading


def _shown(path: Path) -> str:
    """`path` relative to the current folder when it is inside it (what a person can type), else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def summary(grading: Grading) -> str:
    """The table printed after grading: one line per exercise in notebook order, a total per notebook."""
    width = min(max([len(s.title) for s in grading.scores] + [8]), 60)
    lines = [f"{'student':<10} {'notebook':<24} {'exercise':<{width}} {'score':>9}"]
    totals: dict[tuple[str, str], list[float]] = {}
    for s in grading.scores:
        title = s.title if len(s.title) <= width else s.title[: width - 1] + "…"
        mark = ""
        if s.note:
            mark = "  <- TAMPERED: " + s.note.split(":")[0].replace("this ", "")
        elif s.score != s.max_score and (s.student, s.assignment) in grading.pages:
            mark = "  <- see feedback"
        lines.append(f"{s.student:<10} {s.assignment:<24} {title:<{width}} {s.score:>4g} / {s.max_score:<3g}{mark}")
        t = totals.setdefault((s.student, s.assignment), [0.0, 0.0])
        t[0] += s.score
        t[1] += s.max_score
    if totals:
        lines.append("")
        for (student, aid), (got, best) in totals.items():
            lines.append(f"{student:<10} {aid:<24} {'TOTAL':<{width}} {got:>4g} / {best:<3g}")
    lines += [f"NOT GRADED: {s}" for s in grading.skipped]
    lines += [f"GRADING FAILED: {p}" for p in grading.problems]
    return "\n".join(lines)


def _where(grading: Grading, out: Path) -> str:
    """Where the grades and the feedback pages are, as paths that exist."""
    lines = [f"grades: {_shown(out / 'grades.csv')}"]
    pages = sorted(grading.pages.values())
    if len(pages) <= 4:
        lines += [f"feedback: {_shown(p)}" for p in pages]
    else:
        lines.append(f"feedback: {len(pages)} pages in {_shown(out / 'feedback')}/<student>/<notebook>.html")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The command line; exit code 0 when every notebook found was graded, 1 when grading itself failed."""
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.tools.autograde",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("student", help="write student versions into student/")
    s.add_argument("notebooks", nargs="*", help="only these (e.g. 01_attention); default: all")
    g = sub.add_parser("grade", help="grade student/ (or a class folder)")
    g.add_argument("notebooks", nargs="*", help="only these (e.g. 01_attention); default: all")
    g.add_argument("--class-dir", type=Path, help="a folder <student>/<assignment>/<assignment>.ipynb")
    g.add_argument("--timeout", type=int, default=120, help="seconds per cell before it is interrupted")
    args = parser.parse_args(argv)
    if args.command == "student":
        for name, action in make_student(only=args.notebooks or None).items():
            print(f"student/{name:<32} {action}")
        print("Work in student/; grade with `make grade`. Solutions stay in notebooks/.")
        return 0
    if args.class_dir is not None and not args.class_dir.is_dir():
        print(f"GRADING FAILED: --class-dir {args.class_dir} is not a folder", file=sys.stderr)
        return 1
    try:
        grading = grade(class_dir=args.class_dir, timeout=args.timeout, only=args.notebooks or None)
    except ValueError as e:  # an unknown notebook name
        print(f"GRADING FAILED: {e}", file=sys.stderr)
        return 1
    print(summary(grading))
    if grading.scores:
        print("\n" + _where(grading, OUT))
    return 1 if grading.problems or not grading.scores else 0


if __name__ == "__main__":
    sys.exit(main())
