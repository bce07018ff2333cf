"""A class on one JupyterHub: release, collect, autograde and return feedback through nbgrader's exchange.

    python -m course_utils.tools.hub release 01_attention    # make release NB=01_attention
    python -m course_utils.tools.hub collect 01_attention    # make collect NB=01_attention
    python -m course_utils.tools.hub autograde 01_attention  # make autograde NB=01_attention
    python -m course_utils.tools.hub feedback 01_attention   # make feedback NB=01_attention

Each command is a thin wrapper over nbgrader's own (`release_assignment`, `collect`,
`autograde`, `release_feedback`) run by the instructor, in the course root that `make grade`
uses (build/nbgrader/, moved by $COURSE_BUILD_DIR), with the exchange at $COURSE_EXCHANGE
(default /srv/nbgrader/exchange; `make hub` creates it). What it adds is the course's glue:
- `release` generates the student version exactly as `make student` does (autograde.build_release);
- `collect` puts the submissions into build/nbgrader/collected/<student>/<assignment>/ (nbgrader's
  layout, with the timestamp and the submission's secret), not into submitted/, which `make grade`
  rebuilds from its input each run;
- `autograde` is `make grade` on that folder: the same per-cell time limit, tampering checks,
  summary table, grades.csv and feedback pages that never show hidden tests;
- `feedback` releases those pages to the exchange, without the MathJax link that only works next
  to build/grading/feedback/vendor (in a student's fetched copy the formulas stay as TeX), and
  without server paths; each student fetches only their own (nbgrader names the file by a hash
  of a secret only that student's submission holds).
Students fetch and submit from JupyterLab's Nbgrader → Assignment List (nbgrader's assignment_list extension).
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import sys
from pathlib import Path

from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory

from course_utils.paths import ROOT
from course_utils.tools import autograde
from course_utils.tools.feedback import finish_page

EXCHANGE_ENV = "COURSE_EXCHANGE"
DEFAULT_EXCHANGE = Path("/srv/nbgrader/exchange")
COURSE_ID = "transformers-course"  # autograde._config's course id: the exchange keeps one folder per course
COLLECTED = "collected"  # nbgrader's submitted_directory for `collect`; `make grade` owns submitted/
RELEASED_FEEDBACK = "hub_feedback"  # the pages as released: course/hub_feedback/<student>/<assignment>/


class HubError(RuntimeError):
    """A step of the class loop that cannot go on; the message says what was wrong and how to fix it."""


def exchange_root(path: Path | str | None = None) -> Path:
    """The exchange folder: `path`, else $COURSE_EXCHANGE, else /srv/nbgrader/exchange; checked usable.

    nbgrader needs it to exist and be writable by everyone (mode 1777 or 0777): students write
    their submissions into it. `make hub` creates it so.
    """
    root = Path(path or os.environ.get(EXCHANGE_ENV) or DEFAULT_EXCHANGE)
    fix = (
        f"create it as root: `mkdir -p {root} && chmod 1777 {root}` (make hub does), "
        f"or name the right one: make ... EXCHANGE=<folder> (${EXCHANGE_ENV})"
    )
    if not root.is_dir():
        raise HubError(f"the exchange folder {root} does not exist; {fix}")
    if stat.S_IMODE(root.stat().st_mode) & 0o777 != 0o777:
        raise HubError(f"the exchange folder {root} has mode {oct(stat.S_IMODE(root.stat().st_mode))}, not 1777; {fix}")
    return root


def shared_environment_problem(paths: list[Path] | None = None) -> str | None:
    """Why other Unix users could not run the course's environment, or None when they can.

    Every student's server runs this virtual environment's Python as that student, so the checkout,
    the environment and the Python it was made from must be readable and searchable by everyone. A
    venv made from a Python under /root (pyenv) fails that; make it from the system's.

    >>> shared_environment_problem([Path("/usr/bin")]) is None
    True
    """
    if paths is None:
        paths = [ROOT, Path(sys.prefix), Path(os.path.realpath(sys.executable)), Path(sys.base_prefix)]
    for path in paths:
        for part in [path, *path.parents]:
            if part.exists() and stat.S_IMODE(part.stat().st_mode) & 0o005 != 0o005:
                return (
                    f"{part} is not readable and searchable by other users, so students' servers cannot run "
                    f"{sys.executable}: build the environment from a Python everyone can run "
                    "(as root: `make distclean && make PYTHON=/usr/bin/python3 hub-setup`), in a checkout others can read"
                )
    return None


def _api(course: Path, exchange: Path, timeout: int = 120, **coursedir) -> NbGraderAPI:
    """nbgrader's API on the course root, with the course's settings (autograde._config) and this exchange."""
    bindir = str(Path(sys.executable).parent)  # nbgrader runs `alembic` from its own environment
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    config = autograde._config(course, timeout)
    config.Exchange.root = str(exchange)
    config.ExchangeReleaseAssignment.force = True  # a re-release replaces the copy in the exchange
    for name, value in coursedir.items():
        config.CourseDirectory[name] = value
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def _check(result: dict, what: str) -> str:
    if not result.get("success"):
        log = (result.get("log") or "").strip()
        raise HubError(f"nbgrader could not {what}:\n{log}\n{result.get('error') or ''}".rstrip())
    return result.get("log") or ""


def _one(assignment: str | None, notebooks: Path) -> str:
    known = autograde.assignments(notebooks)
    if not assignment:
        raise HubError(
            f"name the notebook, e.g. NB={known[1] if len(known) > 1 else known[0]} (make) or as the argument"
        )
    if assignment.endswith(".ipynb"):
        assignment = Path(assignment).stem
    if assignment not in known:
        raise HubError(f"no notebook with exercises named {assignment!r}; known: {', '.join(known)}")
    return assignment


def release(
    assignment: str, course: Path = autograde.COURSE, notebooks: Path = autograde.NOTEBOOKS, exchange=None
) -> Path:
    """Generate the student version (as `make student`) and release it; returns its folder in the exchange."""
    aid = _one(assignment, notebooks)
    root = exchange_root(exchange)
    autograde.build_release(course, notebooks, [aid])
    _check(_api(course, root).release_assignment(aid), f"release {aid}")
    out = root / COURSE_ID / "outbound" / aid
    if not (out / f"{aid}.ipynb").exists():
        raise HubError(f"nbgrader reported success but {out / f'{aid}.ipynb'} is missing")
    return out


def collect(
    assignment: str, course: Path = autograde.COURSE, notebooks: Path = autograde.NOTEBOOKS, exchange=None
) -> dict[str, Path]:
    """nbgrader collect into course/collected/; returns {student: their collected notebook}."""
    aid = _one(assignment, notebooks)
    root = exchange_root(exchange)
    if not (root / COURSE_ID / "inbound").is_dir():
        raise HubError(
            f"{aid} was never released to {root} (no {root / COURSE_ID / 'inbound'}): `make release NB={aid}`"
        )
    _check(_api(course, root, submitted_directory=COLLECTED).collect(aid), f"collect {aid}")
    return {p.parent.parent.name: p for p in sorted((course / COLLECTED).glob(f"*/{aid}/{aid}.ipynb"))}


def grade_collected(
    assignment: str,
    course: Path = autograde.COURSE,
    notebooks: Path = autograde.NOTEBOOKS,
    out: Path = autograde.OUT,
    timeout: int = 120,
) -> autograde.Grading:
    """`make grade` on the collected submissions of one assignment (scores, grades.csv, feedback pages)."""
    aid = _one(assignment, notebooks)
    collected = course / COLLECTED
    if not any(collected.glob(f"*/{aid}/{aid}.ipynb")):
        raise HubError(f"no collected submission of {aid} in {collected}: run `make collect NB={aid}` first")
    return autograde.grade(
        class_dir=collected, course=course, notebooks=notebooks, out=out, timeout=timeout, only=[aid]
    )


def release_feedback(
    assignment: str,
    course: Path = autograde.COURSE,
    notebooks: Path = autograde.NOTEBOOKS,
    out: Path = autograde.OUT,
    exchange=None,
) -> tuple[list[str], list[str]]:
    """Release the feedback pages of the graded, collected submissions: (students who get one, pages left out).

    nbgrader names a released page by a hash of the submission's secret, so each page travels with the
    timestamp.txt and submission_secret.txt collected with that submission.
    """
    aid = _one(assignment, notebooks)
    root = exchange_root(exchange)
    pages = sorted((course / "feedback").glob(f"*/{aid}/{aid}.html"))
    if not pages:
        raise HubError(f"no feedback pages of {aid} in {course / 'feedback'}: run `make autograde NB={aid}` first")
    staged = course / RELEASED_FEEDBACK
    shutil.rmtree(staged, ignore_errors=True)
    students, left_out = [], []
    for page in pages:
        student = page.parent.parent.name
        submission = course / COLLECTED / student / aid
        if not (submission / "submission_secret.txt").exists():
            left_out.append(f"{student}/{aid}: graded, but not collected through the exchange (`make collect`)")
            continue
        dest = staged / student / aid
        dest.mkdir(parents=True)
        for name in ("timestamp.txt", "submission_secret.txt"):
            shutil.copyfile(submission / name, dest / name)
        private = [course, out, submission, notebooks]
        (dest / page.name).write_text(finish_page(page.read_text(encoding="utf-8"), None, private), encoding="utf-8")
        students.append(student)
    if students:
        api = _api(course, root, submitted_directory=COLLECTED, feedback_directory=RELEASED_FEEDBACK)
        _check(api.release_feedback(aid), f"release the feedback of {aid}")
    return students, left_out


def main(argv: list[str] | None = None) -> int:
    """The command line; exit code 0 on success, 1 with a line saying what to fix otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.tools.hub",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [
        ("release", "generate the student version and release it to the exchange"),
        ("collect", "collect the submissions from the exchange"),
        ("autograde", "grade the collected submissions (as make grade)"),
        ("feedback", "release the feedback pages to the students"),
    ]:
        p = sub.add_parser(name, help=text)
        p.add_argument("notebook", nargs="?", help="the notebook, e.g. 01_attention")
        p.add_argument(
            "--exchange", type=Path, help=f"the exchange folder (default ${EXCHANGE_ENV} or {DEFAULT_EXCHANGE})"
        )
        if name == "autograde":
            p.add_argument("--timeout", type=int, default=120, help="seconds per cell before it is interrupted")
    args = parser.parse_args(argv)
    try:
        if args.command == "release":
            where = release(args.notebook, exchange=args.exchange)
            print(f"released {where.name} to {where}; students fetch it from JupyterLab's Nbgrader → Assignment List")
        elif args.command == "collect":
            got = collect(args.notebook, exchange=args.exchange)
            print(f"collected {len(got)} submission(s) into {autograde.COURSE / COLLECTED}: {', '.join(got) or 'none'}")
        elif args.command == "autograde":
            if args.timeout < 1:
                raise HubError(f"--timeout must be at least 1 second, not {args.timeout}")
            grading = grade_collected(args.notebook, timeout=args.timeout)
            print(autograde.summary(grading))
            if grading.scores:
                print("\n" + autograde._where(grading, autograde.OUT))
            return 1 if grading.problems or not grading.scores else 0
        else:
            got, left_out = release_feedback(args.notebook, exchange=args.exchange)
            print(f"feedback released to {len(got)} student(s): {', '.join(got) or 'none'}")
            for line in left_out:
                print(f"NO FEEDBACK RELEASED: {line}")
    except HubError as e:
        print(f"{args.command.upper()} FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
