"""The feedback page a student reads: offline, titled by exercise, and plain about what went wrong.

nbgrader's `generate_feedback` writes the page; this module is what it lacks for a course
used without a network and by beginners:
- `FeedbackNotes`, a preprocessor of the page: names each exercise after the heading of the
  markdown cell above it ("Exercise 2: the causal mask"), cuts tracebacks in test cells down
  to the error message (a traceback would quote the hidden line that failed), says what a
  cell timeout or a `sys.exit()` means instead of a bare `KeyboardInterrupt:`, and puts a
  note above a test cell the submission had changed or deleted;
- `vendor_mathjax` copies MathJax 2 next to the pages, from the npm package `make slides`
  installs into build/vendor/ (installed here the same way when missing and npm exists;
  without npm the pages show formulas as TeX source): the page never loads from a network;
- `finish_page` points the page at that copy, makes long messages wrap, and replaces
  this machine's paths (course folder, Python prefix, temp files) with short names.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nbformat.v4 import new_output
from nbgrader.preprocessors.base import NbGraderPreprocessor
from nbgrader.utils import is_grade, is_solution
from traitlets import Integer

from course_utils.paths import ROOT, build_root

HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
POINTS = re.compile(r"\s*\(\s*\d+(?:\.\d+)?\s+points?\s*\)\s*$", re.I)
BIG_OUTPUT = 200_000  # characters: a plotly figure carries its 4 MB library; pages stay under 1 MB
PAGE_BUDGET = 600_000  # characters of outputs in all: with nbconvert's CSS (about 170 KB) a page stays under 1 MB
LEFT_OUT = "(a figure, left out of this page to keep it small: run the notebook to see it)\n"
NOTES_KEY = "course_feedback_notes"  # notebook metadata: {grade_id: what was wrong with the submitted cell}
MATHJAX_PARTS = [  # what a page needs of the npm package mathjax@2 (the same files as the slides)
    "MathJax.js",
    "config",
    "extensions",
    "jax/input/TeX",
    "jax/output/CommonHTML",
    "jax/element",
    "fonts/HTML-CSS/TeX/woff",
    "localization/en",
]
MATHJAX_CONFIG = "?config=TeX-AMS_CHTML-full,Safe"
CDN_MATHJAX = re.compile(r'<script[^>]*src="https?://[^"]*mathjax[^"]*"[^>]*>\s*</script>', re.I)
WRAP_CSS = """<style type="text/css">
/* long messages wrap instead of scrolling sideways */
div.output_area pre, div.output_subarea pre, div.output_text pre { white-space: pre-wrap; word-break: normal; overflow-wrap: anywhere; }
div.nbgrader_cell div.input_area pre { white-space: pre-wrap; }  /* the test code too, no sideways scroll */
div.course-note { border-left: 4px solid #d2413a; background: #fdf1f0; padding: 0.5em 0.8em; margin: 0.5em 0; }
span.course-flag { color: #d2413a; font-weight: bold; }
</style>
"""


def exercise_titles(nb) -> dict[str, str]:
    """{grade_id of each test cell: the title of its exercise}, in notebook order.

    The title is the last heading of the nearest markdown cell above, without "(3 points)";
    the grade id where there is none.
    """
    titles: dict[str, str] = {}
    heading = None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = HEADING.findall(cell.source)
            if found:
                heading = POINTS.sub("", found[-1]).strip()
        nbg = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and nbg.get("grade") and not nbg.get("solution"):
            titles[nbg["grade_id"]] = heading or nbg["grade_id"]
    return titles


def timeout_message(seconds: int) -> str:
    """What a student sees for a cell stopped by the per-cell time limit."""
    return (
        f"Time limit: this cell ran longer than {seconds} s, the limit for one cell, and was stopped. "
        "Look for a loop that never ends (a `while` whose condition stays true, a loop that never "
        "moves forward) or for far more work than the exercise needs (a Python loop over every element "
        "where one tensor operation would do)."
    )


EXIT_MESSAGE = (
    "SystemExit: this cell called sys.exit() (or exit() / quit()). In a notebook that only stops the "
    "cell, and whatever came after it in the cell never ran: remove the call (return a value instead)."
)


class FeedbackNotes(NbGraderPreprocessor):
    """Titles, readable errors and tampering notes on the feedback page (see the module docstring)."""

    timeout = Integer(120, help="the per-cell time limit grading ran with, in seconds").tag(config=True)

    def preprocess(self, nb, resources):
        titles = exercise_titles(nb)
        notes = nb.metadata.get(NOTES_KEY, {})
        for cell in nb.cells:
            nbg = cell.metadata.get("nbgrader", {})
            if nbg.get("grade_id") in titles:
                nbg["title"] = titles[nbg["grade_id"]]
            if nbg.get("grade_id") in notes:
                nbg["course_note"] = notes[nbg["grade_id"]]
        nb, resources = super().preprocess(nb, resources)
        _keep_under(nb, PAGE_BUDGET)
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        test_cell = is_grade(cell) and not is_solution(cell)
        for i, out in enumerate(cell.get("outputs", [])):
            if "data" in out and len(json.dumps(out["data"])) > BIG_OUTPUT:  # an interactive figure: plotly.js inline
                cell.outputs[i] = new_output("stream", name="stdout", text=LEFT_OUT)
                continue
            if out.get("output_type") != "error":
                continue
            name, value = out.get("ename", "Error"), out.get("evalue", "")
            if name == "KeyboardInterrupt":
                out["traceback"] = [timeout_message(self.timeout)] + ([] if test_cell else out.get("traceback", []))
            elif name == "SystemExit":
                out["traceback"] = [EXIT_MESSAGE]
            elif test_cell:  # never a traceback quoting the (hidden) test
                out["traceback"] = [f"{name}: {value}"]
        return cell, resources


def _keep_under(nb, budget: int) -> None:
    """Replace the largest rich outputs (figures) by a line until all of them together fit in `budget` characters."""
    rich = [
        (len(json.dumps(out["data"])), cell, i)
        for cell in nb.cells
        for i, out in enumerate(cell.get("outputs", []))
        if "data" in out
    ]
    rich.sort(key=lambda r: -r[0])
    total = sum(size for size, _, _ in rich)
    for size, cell, i in rich:
        if total <= budget:
            break
        cell.outputs[i] = new_output("stream", name="stdout", text=LEFT_OUT)
        total -= size


def vendor_mathjax(feedback_dir: Path, npm_dir: Path | None = None) -> str | None:
    """Copy MathJax 2 into feedback_dir/vendor/mathjax/; return its URL as seen from a page, or None.

    The pages live in feedback_dir/<student>/, hence the "../". The source is the npm package
    `make slides` installs into build/vendor/; it is installed there now when missing and npm
    is on PATH (build time only: the page itself never loads anything from a network).
    """
    npm_dir = npm_dir or build_root() / "vendor"
    package = npm_dir / "node_modules" / "mathjax"
    if not (package / "MathJax.js").exists() and shutil.which("npm"):
        npm_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(npm_dir), "mathjax@2"],
            capture_output=True,
        )
    if not (package / "MathJax.js").exists():
        return None
    for part in MATHJAX_PARTS:
        src, dst = package / part, feedback_dir / "vendor" / "mathjax" / part
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dst)
    return "../vendor/mathjax/MathJax.js" + MATHJAX_CONFIG


def _private_paths(extra: list[Path]) -> list[tuple[str, str]]:
    """(path on this machine, what the page says instead), longest first so nested paths go first."""
    pairs = [(str(p), "&lt;grading&gt;") for p in extra]
    pairs += [(str(ROOT), "&lt;course&gt;"), (sys.prefix, "&lt;python&gt;"), (sys.base_prefix, "&lt;python&gt;")]
    pairs += [(str(Path.home()), "~"), (tempfile.gettempdir(), "&lt;tmp&gt;")]
    return sorted({(a, b) for a, b in pairs if len(a) > 1}, key=lambda pair: -len(pair[0]))


def finish_page(html: str, mathjax_url: str | None, private: list[Path]) -> str:
    """The page as written for the student: local MathJax (or none), wrapping messages, no server paths."""
    scripts = iter([f'<script src="{mathjax_url}"></script>' if mathjax_url else ""])
    html = CDN_MATHJAX.sub(lambda _: next(scripts, ""), html)  # the page's own; plotly adds one per figure
    html = html.replace("</head>", WRAP_CSS + "</head>", 1)
    for path, name in _private_paths(private):
        html = html.replace(path, name)
    return html
