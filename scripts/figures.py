"""Every figure of the notebooks as PNG files plus one contact sheet per notebook, for a person to review.

    python scripts/figures.py              # make figures: build/figures/<notebook>/<cell>-<k>.png
    python scripts/figures.py --only 01_attention --full

Each notebook is executed headless first (SMOKE by default; reused when the executed copy is
newer than the source, as for the slides). Then every image/png output is written out, named
by its code cell's execution count, and the figures of one notebook are tiled into
build/figures/<notebook>.contact.png with their names, so a whole lesson's figures fit one look:
cut tick labels, legends over data and unreadable fonts show up there.
"""

from __future__ import annotations

import argparse
import base64
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_slides import BUILD, execute, notebooks  # noqa: E402

OUT = BUILD / "figures"


def extract(executed: Path, out: Path) -> list[Path]:
    """Write each PNG output of `executed` to out/<cell>-<k>.png; return the paths in notebook order."""
    import nbformat

    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    paths = []
    for cell in nbformat.read(executed, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        pngs = [o["data"]["image/png"] for o in cell.outputs if "image/png" in o.get("data", {})]
        for k, data in enumerate(pngs):
            path = out / f"cell{cell.execution_count:03d}-{k}.png"
            path.write_bytes(base64.b64decode(data))
            paths.append(path)
    return paths


def contact_sheet(figures: list[Path], target: Path, title: str, columns: int = 4) -> Path | None:
    """Tile `figures` into one PNG, each under its file name; None if there are no figures."""
    if not figures:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = math.ceil(len(figures) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, path in zip(axes.flat, figures):
        ax.imshow(plt.imread(path))
        ax.set_title(path.stem, fontsize=10)
    fig.suptitle(f"{title}: {len(figures)} figures", fontsize=16)
    fig.tight_layout()
    fig.savefig(target, dpi=80)
    plt.close(fig)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="execute in full mode (default: SMOKE)")
    parser.add_argument("--only", action="append", help="a notebook's stem, e.g. 01_attention (repeatable)")
    args = parser.parse_args(argv)
    chosen = [nb for nb in notebooks() if not args.only or nb.stem in args.only]
    if args.only and len(chosen) != len(args.only):
        known = [nb.stem for nb in notebooks()]
        parser.error(f"--only {args.only}: unknown notebook; choose from {known}")
    for nb in chosen:
        figures = extract(execute(nb, smoke=not args.full), OUT / nb.stem)
        sheet = contact_sheet(figures, OUT / f"{nb.stem}.contact.png", nb.stem)
        print(f"{nb.stem}: {len(figures)} figures -> {sheet.relative_to(BUILD.parent) if sheet else 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
