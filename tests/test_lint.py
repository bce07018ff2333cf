"""ruff's lint rules and formatter pass on the code (settings: [tool.ruff] in pyproject.toml).

The same two commands as `make lint`, over the same paths: course_utils/, scripts/, tests/,
benchmarks/ and the notebooks' percent scripts (notebooks/NN_*.py, paired with the .ipynb).
Fix what they report with `ruff check --fix` and `ruff format` (then, for a notebook's script,
`python scripts/nbsync.py notebooks/NN_name.py` so the .ipynb follows).
"""

import subprocess

import pair_notebooks  # scripts/ is on sys.path (tests/conftest.py)
import pytest
from notebook_runner import ROOT

LINT_PATHS = ["course_utils", "scripts", "tests", "benchmarks", "hub"]  # keep in step with LINT_PATHS in the Makefile


def lint_paths() -> list[str]:
    return LINT_PATHS + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def _ruff(*args: str) -> subprocess.CompletedProcess:
    ruff = pair_notebooks.find_ruff()
    if ruff is None:
        pytest.fail("ruff is not installed: `pip install -e '.[dev]'` (it is in the dev extra)")
    return subprocess.run([ruff, *args, *lint_paths()], cwd=ROOT, capture_output=True, text=True)


def test_ruff_check():
    done = _ruff("check", "--no-fix", "--output-format", "concise")
    assert done.returncode == 0, (
        f"`ruff check` found problems (fix: `ruff check --fix`, or by hand):\n"
        f"{done.stdout[-6000:]}{done.stderr[-2000:]}"
    )


def test_ruff_format():
    done = _ruff("format", "--check", "--output-format", "concise")
    assert done.returncode == 0, (
        f"`ruff format --check`: these files are not formatted (fix: `ruff format <file>`; "
        f"for notebooks/NN_*.py then `python scripts/nbsync.py <file>`):\n"
        f"{done.stdout[-6000:]}{done.stderr[-2000:]}"
    )
