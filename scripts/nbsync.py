"""Sync a notebook pair after an edit: write the committed .ipynb and its percent script, fill checked outputs.

    python scripts/nbsync.py notebooks/01_attention.py      # you edited the percent script (the usual way)
    python scripts/nbsync.py notebooks/01_attention.ipynb   # you edited the notebook (JupyterLab, VS Code ...)
    python scripts/nbsync.py --format notebooks/01_attention.py   # ruff-format the script first
    python scripts/nbsync.py --all                          # every notebook from its script (after `ruff format`)

Name the file you edited; the other one of the pair is rewritten from it. Every notebook in
notebooks/ has a percent script beside it (jupytext.toml pairs them; CONTRIBUTING.md, "Authoring
loop"). Cell metadata goes in the cell header, e.g.
`# %% tags=["parameters"] slideshow={"slide_type": "skip"}`.

What one sync does:
1. reads the cells from the script (from a named .ipynb, its script is written first);
2. writes notebooks/<name>.ipynb with the course kernelspec and no outputs, each unchanged cell
   keeping its cell id (so the diff shows only what changed);
3. fills the outputs of cells that start with `# NBVAL_CHECK_OUTPUT` (tests/test_notebooks.py checks a
   SMOKE run prints the same, nbval's --nbval-lax rule) by executing the notebook once in SMOKE mode
   into build/nbsync/, never over the source. With
   `--no-execute` (and with `--all`, where a checked cell is unchanged) it carries the outputs
   over from the previous .ipynb instead;
4. rewrites the percent script from the new notebook (scripts/pair_notebooks.py), last, so that
   it is never older than its notebook (JupyterLab's jupytext refuses an outdated script).

It refuses to sync from a script that is older than a notebook that says something else (you
probably edited the notebook: name the .ipynb instead), unless `--force`.
A script elsewhere (the old `build/src/01_attention.py` way) still works: it writes
notebooks/01_attention.ipynb and its pair.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/: pair_notebooks
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import pair_notebooks as pair  # noqa: E402
from course_utils.paths import NOTEBOOKS_DIR, ROOT, build_root  # noqa: E402

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
NEWER_MARGIN_S = 1.0  # jupytext's own margin before it calls a paired file outdated


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT")


def convert(src: Path) -> nbformat.NotebookNode:
    """The notebook a percent script describes: course kernelspec, no outputs, no layout metadata."""
    nb = pair.read_script(src)
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    for cell in nb.cells:
        cell.metadata.pop("lines_to_next_cell", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def keep_cell_ids(nb: nbformat.NotebookNode, target: Path) -> None:
    """Give each cell a stable id, so a re-sync does not rewrite every cell's id in the diff.

    A cell whose source is unchanged keeps the id it has in the current notebook; a new or
    edited cell gets an id hashed from its position and source (the same on every sync).
    """
    old = {}
    if target.exists():
        for cell in nbformat.read(target, as_version=4).cells:
            if "id" in cell:
                old.setdefault(cell.source, []).append(cell.id)
    used = set()
    for i, cell in enumerate(nb.cells):
        reusable = [x for x in old.get(cell.source, []) if x not in used]
        cell_id = reusable[0] if reusable else hashlib.sha1(f"{i}\n{cell.source}".encode()).hexdigest()[:8]
        while cell_id in used:  # two identical new cells at the same hash: rehash
            cell_id = hashlib.sha1(cell_id.encode()).hexdigest()[:8]
        cell.id = cell_id
        used.add(cell_id)


def carry_checked_outputs(nb: nbformat.NotebookNode, target: Path) -> int:
    """Copy the outputs of unchanged `# NBVAL_CHECK_OUTPUT` cells from the current notebook; return how many lack one.

    A cell is unchanged when keep_cell_ids gave it its old id (same source). An edited checked
    cell has no output to carry: only running the notebook can fill it.
    """
    old = {}
    if target.exists():
        old = {c.id: c for c in nbformat.read(target, as_version=4).cells if "id" in c and is_checked(c)}
    missing = 0
    for cell in (c for c in nb.cells if is_checked(c)):
        before = old.get(cell.id)
        if before is not None and before.source == cell.source and before.outputs:
            cell.outputs, cell.execution_count = before.outputs, before.execution_count
            _tag_keep_output(cell)
        else:
            missing += 1
    return missing


def _tag_keep_output(cell) -> None:
    cell.metadata.setdefault("tags", [])
    if "keep_output" not in cell.metadata["tags"]:
        cell.metadata["tags"].append("keep_output")


def copy_checked_outputs(nb: nbformat.NotebookNode, target: Path) -> None:
    """Execute in SMOKE mode into build/nbsync/ and copy outputs of NBVAL_CHECK_OUTPUT cells back."""
    if not any(is_checked(c) for c in nb.cells):
        return
    out = build_root() / "nbsync" / target.name
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "COURSE_SMOKE": "1", "COURSE_HEADLESS": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            "--kernel",
            "python3",
            "--log-level",
            "WARNING",
            str(target),
            str(out),
            "-p",
            "SMOKE",
            "True",
        ],
        check=True,
        env=env,
        cwd=target.parent,
    )
    executed = nbformat.read(out, as_version=4)
    for mine, ran in zip(
        nb.cells, (c for c in executed.cells if "injected-parameters" not in c.metadata.get("tags", []))
    ):
        if is_checked(mine):
            mine.outputs, mine.execution_count = ran.outputs, ran.execution_count
            _tag_keep_output(mine)


def target_for(src: Path) -> Path:
    """The notebook a named file syncs: itself, the .ipynb beside a paired script, or notebooks/<stem>.ipynb."""
    src = src.resolve()
    if src.suffix == ".ipynb":
        return src
    if src.with_suffix(".ipynb").exists() or src.parent == NOTEBOOKS_DIR.resolve():
        return src.with_suffix(".ipynb")
    return NOTEBOOKS_DIR / (src.stem + ".ipynb")


def ruff_format(path: Path) -> None:
    """Format one percent script in place with the repository's ruff settings."""
    ruff = pair.find_ruff()
    if ruff is None:
        sys.exit("--format needs ruff: pip install -e '.[dev]'")
    subprocess.run([ruff, "format", "--quiet", "--config", str(ROOT / "pyproject.toml"), str(path)], check=True)


def guard_outdated(script: Path, target: Path) -> None:
    """Stop before a stale script overwrites a notebook that was edited after it."""
    if not target.exists() or target.stat().st_mtime <= script.stat().st_mtime + NEWER_MARGIN_S:
        return
    found = pair.differences(nbformat.read(target, as_version=4), pair.read_script(script), target.name, script.name)
    if found:
        sys.exit(
            f"{target.name} is newer than {script.name} and says something else:\n  "
            + "\n  ".join(found[:3])
            + f"\nIf you edited the notebook, sync from it: `python scripts/nbsync.py {target}`; "
            "to let the script win anyway, add --force."
        )


def sync(src: Path, execute: str = "always", fmt: bool = False, force: bool = False) -> Path:
    """Sync the pair of `src` (a .py or .ipynb) from `src`; return the notebook written.

    execute: "always" runs the notebook to fill checked outputs, "changed" only when a checked
    cell's output could not be carried over, "never" carries what it can.
    """
    target = target_for(src)
    script = Path(src).resolve()
    if script.suffix == ".ipynb":
        script = pair.write_script(target)  # the notebook is the edited side: its script first
    elif not script.exists():
        sys.exit(f"{script} does not exist; write the percent scripts first: `python scripts/pair_notebooks.py`")
    elif not force:
        guard_outdated(script, target)
    if fmt:
        ruff_format(script)
    nb = convert(script)
    keep_cell_ids(nb, target)
    missing = carry_checked_outputs(nb, target)
    nbformat.write(nb, target)
    if execute == "always" or (execute == "changed" and missing):
        copy_checked_outputs(nb, target)
        nbformat.write(nb, target)
    pair.write_script(target)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="*", type=Path, help="percent scripts (.py) or notebooks (.ipynb) you edited")
    parser.add_argument(
        "--all", action="store_true", help="every notebooks/NN_*.py; runs a notebook only where a checked cell changed"
    )
    parser.add_argument(
        "--no-execute",
        action="store_true",
        help="never run the notebook: carry NBVAL_CHECK_OUTPUT outputs of unchanged cells over",
    )
    parser.add_argument("--format", action="store_true", help="ruff format each script before syncing")
    parser.add_argument("--force", action="store_true", help="sync from a script even if its notebook is newer")
    args = parser.parse_args(argv)
    sources = list(args.sources) + ([pair.script_for(nb) for nb in pair.notebooks()] if args.all else [])
    if not sources:
        parser.error("name the files you edited, or --all")
    execute = "never" if args.no_execute else "changed" if args.all else "always"
    for src in sources:
        target = sync(src, execute=execute, fmt=args.format, force=args.force)
        print(f"{target.relative_to(ROOT)} + {pair.script_for(target).relative_to(ROOT)} (from {Path(src).name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
