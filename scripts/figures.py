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


def contact_sheet(figures: list[Path], target: Path, title: str, columns: int = 4, width: int = 400) -> Path | None:
    """Tile `figures` into one image (PNG or JPEG by `target`'s suffix), each under its name; None if none.

    Each image is shrunk to `width` pixels wide (Pillow, not matplotlib: a 90-slide deck takes a
    second instead of eight).
    """
    if not figures:
        return None
    from PIL import Image, ImageDraw

    thumbs = []
    for path in figures:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((width, 10 * width))
            thumbs.append((path.stem, im))
    label, gap = 18, 12
    cell_h = max(im.height for _, im in thumbs) + label
    rows = math.ceil(len(thumbs) / columns)
    sheet = Image.new("RGB", (columns * (width + gap) + gap, 40 + rows * (cell_h + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((gap, 12), f"{title}: {len(figures)} images", fill="black")
    for i, (name, im) in enumerate(thumbs):
        x, y = gap + (i % columns) * (width + gap), 40 + (i // columns) * (cell_h + gap)
        draw.text((x, y), name, fill="black")
        sheet.paste(im, (x, y + label))
        draw.rectangle((x - 1, y + label - 1, x + im.width, y + label + im.height), outline=(170, 170, 170))
    sheet.save(target)
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
