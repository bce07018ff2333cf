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
- feedback never shows hidden tests: nbgrader's ClearHiddenTests removes them from the
  source, and `HideTestDetails` cuts tracebacks in test cells down to the error message
  (a traceback would quote the hidden line that failed);
- grading fails loudly (exit code 1 and a line in the summary) when nbgrader itself failed
  or matched nothing, where nbgrader's command line exits 0.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from course_utils.paths import NOTEBOOKS_DIR, STUDENT_DIR, build_root

NOTEBOOKS = NOTEBOOKS_DIR
STUDENT = STUDENT_DIR
COURSE = build_root() / "nbgrader"
OUT = build_root() / "grading"
MANIFEST = ".generated.json"
SELF = "me"  # the student id used for your own notebooks


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


def _config(course: Path, timeout: int):
    from nbgrader.preprocessors import ClearHiddenTests, GetGrades
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from traitlets.config import Config

    c = Config()
    c.CourseDirectory.root = str(course)
    c.CourseDirectory.course_id = "transformers-course"
    c.Execute.timeout = timeout  # per cell: a student's infinite loop costs that exercise only
    c.Execute.interrupt_on_timeout = True
    c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, HideTestDetails, CSSHTMLHeaderPreprocessor]
    return c


def _api(course: Path, timeout: int = 120):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    # nbgrader runs the `alembic` command of its own environment: make sure it is on PATH
    # even when this runs as .venv/bin/python without an activated venv.
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    config = _config(course, timeout)
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def _hide_test_details_class():
    from nbgrader.preprocessors.base import NbGraderPreprocessor
    from nbgrader.utils import is_grade, is_solution

    class HideTestDetails(NbGraderPreprocessor):
        """In test cells, keep only `ErrorName: message` of an error: never a traceback quoting the test."""

        def preprocess_cell(self, cell, resources, index):
            if cell.cell_type == "code" and is_grade(cell) and not is_solution(cell):
                for out in cell.get("outputs", []):
                    if out.get("output_type") == "error":
                        out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]
            return cell, resources

    return HideTestDetails


HideTestDetails = _hide_test_details_class()


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
    exercise: str
    score: float
    max_score: float


def _collect_submissions(
    course: Path, student_dir: Path | None, class_dir: Path | None, known: list[str]
) -> dict[str, list[str]]:
    """Copy submissions into course/submitted/<student>/<assignment>/; return {student: [assignments]}."""
    submitted = course / "submitted"
    if submitted.exists():
        shutil.rmtree(submitted)
    found: dict[str, list[str]] = {}
    if class_dir is not None:
        for nb in sorted(class_dir.glob("*/*/*.ipynb")):
            student, aid = nb.parent.parent.name, nb.parent.name
            if aid in known and nb.stem == aid:
                found.setdefault(student, []).append(aid)
                dest = submitted / student / aid
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(nb, dest / nb.name)
    else:
        for aid in known:
            nb = student_dir / f"{aid}.ipynb"
            if nb.exists():
                found.setdefault(SELF, []).append(aid)
                dest = submitted / SELF / aid
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(nb, dest / nb.name)
    return found


def grade(
    student_dir: Path = STUDENT,
    class_dir: Path | None = None,
    course: Path = COURSE,
    notebooks: Path = NOTEBOOKS,
    out: Path = OUT,
    timeout: int = 120,
    only: list[str] | None = None,
) -> tuple[list[Score], list[str]]:
    """Autograde submissions, write out/grades.csv and out/feedback/<student>/<assignment>.html.

    Returns (scores per exercise, problems). A problem is grading itself failing (a notebook
    nbgrader could not grade, nothing to grade); a wrong answer is a score, not a problem.
    """
    from nbgrader.api import Gradebook

    warnings.filterwarnings("ignore", module="nbgrader")  # SQLAlchemy autoflush chatter from nbgrader's own queries
    known = list(build_release(course, notebooks, only))
    subs = _collect_submissions(course, student_dir, class_dir, known)
    problems = []
    if not subs:
        where = class_dir if class_dir else student_dir
        problems.append(
            f"nothing to grade: no notebook named like {known[:2]}... found in {where} "
            "(run `make student` first, or check the class folder layout <student>/<assignment>/<assignment>.ipynb)"
        )
        return [], problems
    os.environ.setdefault("COURSE_SMOKE", "1")  # grading runs every notebook: small sizes, same tests
    os.environ.setdefault("COURSE_HEADLESS", "1")
    api = _api(course, timeout)
    scores: list[Score] = []
    feedback_dir = out / "feedback"
    for student, aids in subs.items():
        for aid in aids:
            result = api.autograde(aid, student, force=True, create=True)
            if not result.get("success"):
                problems.append(
                    f"{student}/{aid}: nbgrader could not grade it: "
                    f"{(result.get('error') or result.get('log') or '').strip().splitlines()[-1:]}"
                )
                continue
            _check(api.generate_feedback(aid, student, force=True), f"write feedback for {student}/{aid}")
            html = course / "feedback" / student / aid / f"{aid}.html"
            (feedback_dir / student).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(html, feedback_dir / student / f"{aid}.html")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student, aids in subs.items():
            for aid in aids:
                try:
                    nb = gb.find_submission_notebook(aid, aid, student)
                except Exception:
                    continue  # reported above as a problem
                for g in sorted(nb.grades, key=lambda g: g.name):
                    scores.append(Score(student, aid, g.name, float(g.score or 0), float(g.max_score)))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "grades.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "assignment", "exercise", "score", "max_score"])
        for s in scores:
            w.writerow([s.student, s.assignment, s.exercise, f"{s.score:g}", f"{s.max_score:g}"])
    return scores, problems


def summary(scores: list[Score], problems: list[str]) -> str:
    """The table printed after grading: one line per exercise, a total per student and notebook."""
    lines = [f"{'student':<10} {'notebook':<28} {'exercise':<28} {'score':>9}"]
    totals: dict[tuple[str, str], list[float]] = {}
    for s in scores:
        mark = "" if s.score == s.max_score else "  <- see feedback"
        lines.append(f"{s.student:<10} {s.assignment:<28} {s.exercise:<28} {s.score:>4g} / {s.max_score:<3g}{mark}")
        t = totals.setdefault((s.student, s.assignment), [0.0, 0.0])
        t[0] += s.score
        t[1] += s.max_score
    if totals:
        lines.append("")
        for (student, aid), (got, best) in totals.items():
            lines.append(f"{student:<10} {aid:<28} {'TOTAL':<28} {got:>4g} / {best:<3g}")
    for p in problems:
        lines.append(f"GRADING FAILED: {p}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
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
    scores, problems = grade(class_dir=args.class_dir, timeout=args.timeout, only=args.notebooks or None)
    print(summary(scores, problems))
    if scores:
        print(f"\ngrades: {OUT / 'grades.csv'}\nfeedback: {OUT / 'feedback'}/<student>/<notebook>.html")
    return 1 if problems or not scores else 0


if __name__ == "__main__":
    sys.exit(main())
