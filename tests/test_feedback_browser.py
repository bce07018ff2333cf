"""A feedback page in a real browser (headless Chromium, driven by Playwright), opened from disk as a student would.

It must load nothing from a network (every request is logged and any that is not a local file
fails the test), typeset its formulas with the MathJax copied next to it, wrap a long error
message instead of scrolling sideways, and name the exercise in its contents list. Skipped
with a message when Chromium, Playwright or a MathJax copy (npm, once) is missing.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from test_slides_browser import CHROMIUM, SHOTS, browser_page, sync_playwright

from course_utils.tools import autograde, feedback

pytestmark = [
    pytest.mark.browser,
    pytest.mark.notebook,  # grades a notebook: starts a kernel
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() or sync_playwright is None,
        reason="needs Debian's chromium and the playwright package",
    ),
]


def _exercise_notebook(path):
    """One exercise under a heading with math, whose test fails with a message far wider than the page."""
    grading = lambda gid, grade: {
        "nbgrader": {
            "grade": grade,
            "grade_id": gid,
            "locked": grade,
            "schema_version": 3,
            "solution": not grade,
            "task": False,
            **({"points": 2} if grade else {}),
        }
    }
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    long_word = "x" * 600
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "### Exercise 1: scale by $\\sqrt{d_k}$ (2 points)\n\nReturn $\\frac{s}{\\sqrt{d_k}}$, and $$\\sum_i s_i$$."
        ),
        nbformat.v4.new_code_cell(
            "def scale(s, d_k):\n    ### BEGIN SOLUTION\n    return s / d_k ** 0.5\n    ### END SOLUTION",
            metadata=grading("scale-answer", False),
        ),
        nbformat.v4.new_code_cell(
            f"assert scale(4.0, 4) == 2.0, 'scale(4, 4) should be 2: {long_word} and more words to wrap ' * 3",
            metadata=grading("scale-tests", True),
        ),
    ]
    nbformat.write(nb, path)
    return nb


def test_feedback_page_renders_offline_with_math_and_wrapped_messages(tmp_path):
    if feedback.vendor_mathjax(tmp_path / "probe") is None:
        pytest.skip("no MathJax copy: npm is needed once to install mathjax@2 into build/vendor/")
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    nb = _exercise_notebook(nbs / "91_scale.ipynb")
    nb.cells[1].source = "def scale(s, d_k):\n    return s / d_k"  # wrong: 1.0, not 2.0
    (tmp_path / "class" / "dana" / "91_scale").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "class" / "dana" / "91_scale" / "91_scale.ipynb")
    grading = autograde.grade(
        class_dir=tmp_path / "class", course=tmp_path / "nbgrader", notebooks=nbs, out=tmp_path / "grading"
    )
    assert grading.problems == [] and [(s.title, s.score) for s in grading.scores] == [
        ("Exercise 1: scale by $\\sqrt{d_k}$", 0)
    ]
    page_path = grading.pages[("dana", "91_scale")]
    SHOTS.mkdir(parents=True, exist_ok=True)
    with browser_page() as page:
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_path.as_uri(), wait_until="load")
        page.wait_for_function(
            "document.querySelectorAll('.MathJax_CHTML').length >= 3 && window.MathJax"
            " && MathJax.Hub.queue.pending === 0 && !MathJax.Hub.queue.running",
            timeout=60_000,
        )
        page.screenshot(path=str(SHOTS / "feedback_91_scale.png"), full_page=True)
        assert page.external == [], f"the feedback page tried to load from the network: {page.external[:5]}"
        assert all(url.startswith(("file:", "data:", "blob:", "about:")) for url in requests), requests[:5]
        assert any("vendor/mathjax/MathJax.js" in url for url in requests)
        wide = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert wide <= 1, f"the page scrolls sideways by {wide} px: long messages must wrap"
        toc = page.inner_text("#toc")
        assert "Exercise 1: scale by" in toc and ", 0 / 2" in toc and "Test cell" not in toc
        assert "scale(4, 4) should be 2" in page.inner_text("body")
