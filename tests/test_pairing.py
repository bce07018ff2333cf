"""Every notebook and the percent script beside it say the same thing (scripts/pair_notebooks.py).

A notebook notebooks/NN_name.ipynb is paired with notebooks/NN_name.py by jupytext.toml. These
tests fail when the two disagree (cells, their types, sources and metadata, the kernelspec),
naming the notebook and the command that re-pairs it; they also check the machinery on a
copy in a temporary folder, and that no tool mistakes a percent script for a notebook.

PAIRING_NOTEBOOKS_DIR=/some/copy/notebooks checks another folder (a copy with its scripts).
"""

import fnmatch
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.config import load_jupytext_config
from jupytext.paired_paths import paired_paths
from notebook_runner import NOTEBOOK_GLOB, NOTEBOOKS, ROOT

import build_slides  # scripts/ is on sys.path (tests/conftest.py)
import nbsync
import pair_notebooks as pair
from course_utils.tools import autograde

FOLDER = Path(os.environ.get("PAIRING_NOTEBOOKS_DIR") or ROOT / "notebooks")
PAIRED = pair.notebooks(FOLDER)
SMALL = ROOT / "notebooks" / "00_start_here.ipynb"  # the machinery tests work on a copy of it


def test_jupytext_toml_pairs_each_notebook_with_the_script_beside_it():
    for nb in NOTEBOOKS:
        formats = load_jupytext_config(str(nb)).default_formats(str(nb))
        paths = {Path(p) for p, _ in paired_paths(str(nb), "ipynb", formats)}
        assert paths == {nb, pair.script_for(nb)}, (
            f"jupytext.toml pairs {nb.name} with {sorted(map(str, paths))}; "
            f"scripts/pair_notebooks.py writes {pair.script_for(nb).name}"
        )
    student = ROOT / "student" / "00_start_here.ipynb"
    assert load_jupytext_config(str(student)).default_formats(str(student)) is None, (
        "student copies must not be paired (jupytext.toml: formats limited to notebooks/)"
    )


@pytest.mark.parametrize("path", PAIRED, ids=[p.stem for p in PAIRED])
def test_notebook_and_percent_script_agree(path):
    problems = pair.check([path])
    assert not problems, "\n".join(problems)


def test_no_percent_script_without_its_notebook():
    problems = pair.check([], FOLDER)
    assert not problems, "\n".join(problems)


# --- the machinery, on a copy -------------------------------------------------------------


@pytest.fixture
def copy(tmp_path):
    """A notebooks/ folder with 00_start_here.ipynb and the script pair_notebooks writes for it."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = folder / SMALL.name
    shutil.copyfile(SMALL, nb)
    pair.write_script(nb)
    return nb


def _edit(script: Path, old: str, new: str) -> None:
    text = script.read_text(encoding="utf-8")
    assert old in text, f"test set-up: {old!r} not in {script.name}"
    script.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_written_script_agrees_and_syncs_back_to_the_same_bytes(copy):
    assert pair.check([copy], copy.parent) == []
    original = copy.read_text(encoding="utf-8")
    nbsync.sync(pair.script_for(copy), execute="never", force=True)
    assert copy.read_text(encoding="utf-8") == original, (
        "script -> notebook must give back the committed notebook byte for byte (ids and checked outputs kept)"
    )
    assert pair.check([copy], copy.parent) == []


def test_blank_lines_between_cells_are_layout_not_content(copy):
    """jupytext records extra blank lines after a cell as `lines_to_next_cell`: not a difference."""
    script_nb = pair.read_script(pair.script_for(copy))
    for cell in script_nb.cells:
        cell.metadata["lines_to_next_cell"] = 2
    assert pair.differences(nbformat.read(copy, as_version=4), script_nb) == []


@pytest.mark.skipif(pair.find_ruff() is None, reason="ruff is not installed (pip install -e '.[dev]')")
def test_format_then_sync_leaves_a_formatted_script_that_agrees(copy):
    """The post-formatting flow in small: ruff format the script, sync it back, and both checks pass."""
    script = pair.script_for(copy)
    nbsync.sync(script, execute="never", fmt=True, force=True)
    assert pair.check([copy], copy.parent) == []
    done = subprocess.run(
        [pair.find_ruff(), "format", "--check", "--config", str(ROOT / "pyproject.toml"), str(script)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"the script nbsync rewrote is not ruff-formatted:\n{done.stdout}{done.stderr}"
    formatted = script.read_text(encoding="utf-8")
    pair.write_script(copy)
    assert script.read_text(encoding="utf-8") == formatted, (
        "re-pairing a formatted notebook must not undo ruff's layout"
    )


def test_an_edited_cell_is_named_with_the_fix(copy):
    first_code = next(c for c in nbformat.read(copy, as_version=4).cells if c.cell_type == "code")
    line = first_code.source.splitlines()[0]
    _edit(pair.script_for(copy), line, line + "  # edited")
    (problem,) = pair.check([copy])
    assert copy.name in problem and "source differs" in problem and "# edited" in problem, problem
    assert "scripts/pair_notebooks.py 00_start_here" in problem and "scripts/nbsync.py" in problem, problem


def test_changed_metadata_and_cell_type_are_found(copy):
    script = pair.script_for(copy)
    _edit(script, 'tags=["parameters"]', 'tags=["params"]')
    (problem,) = pair.check([copy])
    assert "metadata differs in ['tags']" in problem, problem
    pair.write_script(copy)
    _edit(script, "# %% [markdown]", "# %% [raw]")
    (problem,) = pair.check([copy])
    assert "a markdown cell in 00_start_here.ipynb, a raw cell in 00_start_here.py" in problem, problem


def test_missing_extra_and_orphan_cells_and_scripts(copy):
    script = pair.script_for(copy)
    text = script.read_text(encoding="utf-8")
    script.write_text(text + '\n# %%\nprint("a new cell")\n', encoding="utf-8")
    (problem,) = pair.check([copy])
    assert "cell(s) the notebook lacks" in problem and "a new cell" in problem, problem
    script.unlink()
    (problem,) = pair.check([copy])
    assert "no percent script 00_start_here.py" in problem and "pair_notebooks.py 00_start_here" in problem
    orphan = copy.parent / "99_orphan.py"
    orphan.write_text("# %%\nx = 1\n", encoding="utf-8")
    problems = pair.check([], copy.parent)
    assert len(problems) == 1 and "99_orphan.py has no notebook" in problems[0], problems


def test_the_kernelspec_round_trips(copy):
    script = pair.script_for(copy)
    _edit(script, "name: python3", "name: python2")
    (problem,) = pair.check([copy])
    assert "notebook metadata" in problem and "python2" in problem, problem


def test_the_script_header_carries_no_jupytext_version(copy):
    header = pair.script_for(copy).read_text(encoding="utf-8").split("# %%")[0]
    assert "jupytext_version" not in header and "kernelspec" in header, header


# --- nothing takes a percent script for a notebook ----------------------------------------


def test_percent_scripts_are_not_notebooks_to_the_tools(copy):
    folder = copy.parent
    assert pair.script_for(copy).exists()
    only = [copy]
    assert sorted(folder.glob(NOTEBOOK_GLOB)) == only, "tests/notebook_runner.py's NOTEBOOKS glob"
    assert build_slides.notebooks(folder) == only, "scripts/build_slides.py"
    assert pair.notebooks(folder) == only, "scripts/pair_notebooks.py"
    assert autograde.assignments(folder) == [copy.stem], "course_utils/tools/autograde.py (nbgrader's source)"
    (line,) = [x for x in (ROOT / "Makefile").read_text().splitlines() if x.startswith("NOTEBOOKS ")]
    assert "wildcard notebooks/" in line and line.rstrip(")").endswith(".ipynb"), f"Makefile (make run): {line}"


def test_percent_scripts_are_not_collected_by_pytest():
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert ini["testpaths"] == ["tests"], "pytest must only look in tests/"
    patterns = ini.get("python_files", ["test_*.py", "*_test.py"])
    named = [
        p.name for p in PAIRED + NOTEBOOKS if any(fnmatch.fnmatch(pair.script_for(p).name, pat) for pat in patterns)
    ]
    assert not named, f"these notebooks' scripts would look like test files to pytest: {named}"


def test_jupytext_reads_the_scripts_as_percent_format(copy):
    script = pair.script_for(copy)
    nb = jupytext.read(script)  # no format given: jupytext must recognise the percent cells itself
    assert len(nb.cells) == len(nbformat.read(copy, as_version=4).cells)
