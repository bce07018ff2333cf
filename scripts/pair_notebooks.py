"""Keep every notebook paired with a percent script beside it, and check that the two agree.

    python scripts/pair_notebooks.py               # write notebooks/NN_name.py from every notebooks/NN_name.ipynb
    python scripts/pair_notebooks.py 01_attention  # only these notebooks (stems or paths)
    python scripts/pair_notebooks.py --check       # write nothing; exit 1 naming every pair that disagrees

The pairing itself is jupytext's, configured once in jupytext.toml at the repository root
(`formats = "notebooks///ipynb,notebooks///py:percent"`), so JupyterLab with jupytext saves
both files and `jupytext --paired-paths` agrees with this script. The percent script is what
people read, diff, review and lint (ruff runs on it); the .ipynb keeps what a script cannot
hold: cell ids and the outputs of `# NBVAL_CHECK_OUTPUT` cells.

This script goes one way, notebook -> script. The other way (you edited the script, or ruff
formatted it) is scripts/nbsync.py, which writes the .ipynb and then the script again with
this module's `write_script`:

    python scripts/nbsync.py notebooks/01_attention.py   # after editing the script
    python scripts/nbsync.py --all                       # every notebook from its script

"Agree" means what jupytext round-trips: the same cells in the same order, each with the
same type, source and metadata (tags, slideshow, nbgrader ...), and the same kernelspec.
Blank lines between cells (which ruff format may change) are layout, not content. When ruff
is installed, a written script is also passed through `ruff format`, but only if that
changes layout alone; a script whose cells ruff would rewrite is written as jupytext made it,
and `ruff format --check` (tests/test_lint.py) then says which file to format and sync back.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
from jupytext.config import load_jupytext_config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from course_utils.paths import NOTEBOOKS_DIR, ROOT  # noqa: E402

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"  # the same glob as tests/notebook_runner.py, autograde and build_slides
SCRIPT_GLOB = "[0-9][0-9]_*.py"
FORMAT = "py:percent"
# Notebook-level metadata the script carries (jupytext.toml filters the rest out); a notebook's
# other metadata (language_info) is written by nbsync and does not round-trip.
NOTEBOOK_KEYS = ("kernelspec",)
# Cell metadata that is layout, not content: jupytext records blank lines before the next cell.
LAYOUT_KEYS = ("lines_to_next_cell",)


def config():
    """The repository's jupytext.toml, as jupytext loads it for a notebook in notebooks/."""
    config = load_jupytext_config(str(ROOT / "notebooks" / "00_start_here.ipynb"))
    if config is None:
        raise RuntimeError(f"{ROOT / 'jupytext.toml'} is missing: it holds the pairing of notebooks/")
    return config


def script_for(notebook: Path) -> Path:
    """notebooks/01_attention.ipynb -> notebooks/01_attention.py (the pair jupytext.toml declares)."""
    return notebook.with_suffix(".py")


def notebook_for(script: Path) -> Path:
    """notebooks/01_attention.py -> notebooks/01_attention.ipynb."""
    return script.with_suffix(".ipynb")


def notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The course's notebooks in `folder`, in order (never the percent scripts beside them)."""
    return sorted(folder.glob(NOTEBOOK_GLOB))


def select(names: list[str], folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Notebook paths from stems (`01_attention`), .ipynb paths or .py paths; all of them when empty."""
    if not names:
        return notebooks(folder)
    found = []
    for name in names:
        path = Path(name)
        nb = path.with_suffix(".ipynb") if path.suffix in (".ipynb", ".py") else folder / f"{name}.ipynb"
        nb = nb.resolve()
        if not nb.exists():
            raise SystemExit(f"no notebook {nb} (give a stem such as 01_attention, or a path)")
        found.append(nb)
    return found


def script_text(nb: nbformat.NotebookNode) -> str:
    """The percent script of a notebook, as jupytext writes it with the repository's settings."""
    return jupytext.writes(nb, fmt=FORMAT, config=config())


def read_script(path: Path) -> nbformat.NotebookNode:
    """A percent script read back into a notebook (no outputs, no cell ids)."""
    return jupytext.read(path, fmt=FORMAT, config=config())


def find_ruff() -> str | None:
    """The ruff beside this Python (the course's .venv), else the one on PATH, else None."""
    return shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


def ruff_layout(text: str, path: Path) -> str:
    """`text` after `ruff format` when that changes only blank lines between cells; else `text`.

    So a script written from an already formatted notebook passes `ruff format --check`, and a
    written script never disagrees with its notebook.
    """
    ruff = find_ruff()
    if ruff is None:
        return text
    done = subprocess.run(
        [ruff, "format", "--config", str(ROOT / "pyproject.toml"), "--stdin-filename", str(path), "-"],
        input=text,
        text=True,
        capture_output=True,
        cwd=ROOT,
    )
    if done.returncode != 0 or done.stdout == text:
        return text
    fmt = {"extension": ".py", "format_name": "percent"}
    same = not differences(
        jupytext.reads(text, fmt=fmt, config=config()), jupytext.reads(done.stdout, fmt=fmt, config=config()), "a", "b"
    )
    return done.stdout if same else text


def write_script(notebook: Path) -> Path:
    """Write the percent script beside `notebook` (after the .ipynb, so it is never the older one)."""
    nb = nbformat.read(notebook, as_version=4)
    script = script_for(notebook)
    script.write_text(ruff_layout(script_text(nb), script), encoding="utf-8")
    return script


def _comparable(nb: nbformat.NotebookNode):
    """(notebook metadata, [(type, source, metadata) per cell]) with what jupytext does not round-trip dropped."""
    meta = {k: nb.metadata[k] for k in NOTEBOOK_KEYS if k in nb.metadata}
    cells = [(c.cell_type, c.source, {k: v for k, v in c.metadata.items() if k not in LAYOUT_KEYS}) for c in nb.cells]
    return meta, cells


def _first_diff(a: str, b: str, a_name: str, b_name: str) -> str:
    diff = list(difflib.unified_diff(a.splitlines(), b.splitlines(), a_name, b_name, n=1, lineterm=""))
    return "\n".join("      " + line for line in diff[2:12]) + ("\n      ..." if len(diff) > 12 else "")


def differences(
    nb: nbformat.NotebookNode,
    script_nb: nbformat.NotebookNode,
    nb_name: str = "notebook",
    script_name: str = "script",
    limit: int = 5,
) -> list[str]:
    """What differs between a notebook and its script read back, in words; [] when they agree.

    The notebook is first sent through the same jupytext round trip, so only what the script
    can hold is compared (cell ids, outputs and jupytext-filtered metadata are not).
    """
    fmt = {"extension": ".py", "format_name": "percent"}
    ours = jupytext.reads(jupytext.writes(nb, fmt=fmt, config=config()), fmt=fmt, config=config())
    (meta_a, cells_a), (meta_b, cells_b) = _comparable(ours), _comparable(script_nb)
    found = []
    if meta_a != meta_b:
        found.append(f"notebook metadata: {nb_name} has {meta_a}, {script_name} has {meta_b}")
    matcher = difflib.SequenceMatcher(a=[c[1] for c in cells_a], b=[c[1] for c in cells_b], autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            for i, j in zip(range(a0, a1), range(b0, b1)):
                (type_a, _, md_a), (type_b, _, md_b) = cells_a[i], cells_b[j]
                if type_a != type_b:
                    found.append(f"cell {i}: a {type_a} cell in {nb_name}, a {type_b} cell in {script_name}")
                if md_a != md_b:
                    keys = sorted(k for k in set(md_a) | set(md_b) if md_a.get(k) != md_b.get(k))
                    found.append(
                        f"cell {i} metadata differs in {keys}: {nb_name} "
                        f"{ {k: md_a.get(k) for k in keys} }, {script_name} { {k: md_b.get(k) for k in keys} }"
                    )
        elif op == "replace" and a1 - a0 == b1 - b0:
            for i, j in zip(range(a0, a1), range(b0, b1)):
                found.append(
                    f"cell {i} source differs:\n" + _first_diff(cells_a[i][1], cells_b[j][1], nb_name, script_name)
                )
        else:
            where = f"cells {a0}-{a1 - 1}" if a1 - a0 > 1 else f"cell {a0}"
            if a1 > a0 and b1 > b0:
                found.append(f"{where} of {nb_name} stand as {b1 - b0} other cell(s) in {script_name}")
            elif a1 > a0:
                found.append(f"{where} of {nb_name} missing from {script_name}: {cells_a[a0][1][:60]!r}")
            else:
                found.append(
                    f"{script_name} has {b1 - b0} cell(s) the notebook lacks before its cell {a0}: "
                    f"{cells_b[b0][1][:60]!r}"
                )
    return found[:limit] + ([f"... and {len(found) - limit} more"] if len(found) > limit else [])


def fix_command(notebook: Path) -> str:
    """The command that re-pairs a notebook, for messages."""
    rel = notebook.relative_to(ROOT) if notebook.is_relative_to(ROOT) else notebook
    return (
        f"if you edited the .ipynb: `python scripts/pair_notebooks.py {notebook.stem}`; if you edited the script: "
        f"`python scripts/nbsync.py {rel.with_suffix('.py')}`"
    )


def check(paths: list[Path], folder: Path | None = None) -> list[str]:
    """One message per notebook in `paths` whose script is missing or disagrees, and per orphan script in `folder`."""
    problems = []
    for notebook in paths:
        script = script_for(notebook)
        if not script.exists():
            problems.append(
                f"{notebook.name}: no percent script {script.name} beside it; "
                f"write it with `python scripts/pair_notebooks.py {notebook.stem}`"
            )
            continue
        found = differences(nbformat.read(notebook, as_version=4), read_script(script), notebook.name, script.name)
        if found:
            problems.append(
                f"{notebook.name} and {script.name} disagree ({fix_command(notebook)}):\n  " + "\n  ".join(found)
            )
    if folder is not None:
        for script in sorted(folder.glob(SCRIPT_GLOB)):
            if not notebook_for(script).exists():
                problems.append(
                    f"{script.name} has no notebook {notebook_for(script).name}: write it with "
                    f"`python scripts/nbsync.py {script}`, or delete the script"
                )
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="stems (01_attention) or paths; default: every notebook")
    parser.add_argument("--check", action="store_true", help="write nothing, exit 1 if a pair disagrees")
    args = parser.parse_args(argv)
    paths = select(args.notebooks)
    if args.check:
        problems = check(paths, None if args.notebooks else NOTEBOOKS_DIR)
        print("\n".join(problems) or f"{len(paths)} notebooks agree with their percent scripts")
        return 1 if problems else 0
    for notebook in paths:
        print(f"{notebook.relative_to(ROOT)} -> {write_script(notebook).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
