"""Author a notebook as a percent-format script, then write the committed .ipynb.

    jupytext --to py:percent notebooks/01_attention.ipynb -o build/src/01_attention.py   # start editing
    python scripts/nbsync.py build/src/01_attention.py                                   # write it back

Cell metadata goes in the cell header, e.g.
`# %% tags=["parameters"] slideshow={"slide_type": "skip"}`. The script writes
notebooks/<name>.ipynb with the course kernel spec, no outputs, and then executes
it once in SMOKE mode (into build/, never over the source) to copy in the outputs of
cells that start with `# NBVAL_CHECK_OUTPUT`, which nbval later re-checks.
"""
import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from course_utils.paths import ROOT, build_root  # noqa: E402

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT")


def convert(src: Path) -> nbformat.NotebookNode:
    nb = jupytext.read(src)
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


def copy_checked_outputs(nb: nbformat.NotebookNode, target: Path) -> None:
    """Execute in SMOKE mode into build/nbsync/ and copy outputs of NBVAL_CHECK_OUTPUT cells back."""
    if not any(is_checked(c) for c in nb.cells):
        return
    out = build_root() / "nbsync" / target.name
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "COURSE_SMOKE": "1", "COURSE_HEADLESS": "1"}
    subprocess.run([sys.executable, "-m", "papermill", "--kernel", "python3", "--log-level", "WARNING",
                    str(target), str(out), "-p", "SMOKE", "True"], check=True, env=env, cwd=ROOT / "notebooks")
    executed = nbformat.read(out, as_version=4)
    for mine, ran in zip(nb.cells, (c for c in executed.cells if "injected-parameters" not in c.metadata.get("tags", []))):
        if is_checked(mine):
            mine.outputs, mine.execution_count = ran.outputs, ran.execution_count
            mine.metadata.setdefault("tags", [])
            if "keep_output" not in mine.metadata["tags"]:
                mine.metadata["tags"].append("keep_output")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", type=Path, help="percent-format .py files")
    parser.add_argument("--no-execute", action="store_true", help="skip filling NBVAL_CHECK_OUTPUT outputs")
    args = parser.parse_args()
    for src in args.sources:
        target = ROOT / "notebooks" / (src.stem + ".ipynb")
        nb = convert(src)
        keep_cell_ids(nb, target)
        nbformat.write(nb, target)
        if not args.no_execute:
            copy_checked_outputs(nb, target)
            nbformat.write(nb, target)
        print(f"{src} -> {target.relative_to(ROOT)}")
