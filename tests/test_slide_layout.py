"""scripts/slide_layout.py: a notebook cut into slides that fit, with nothing lost and the source untouched."""

from __future__ import annotations

import base64
import copy
import struct
import zlib

import nbformat
import pytest
import slide_layout as L
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from notebook_runner import NOTEBOOKS


def _png(width: int, height: int) -> str:
    """A blank PNG of the given size, base64 (only its header matters to the estimate)."""
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = zlib.compress(b"".join(b"\0" + b"\xff" * width for _ in range(height)))
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IDAT", raw)
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b"")).decode()


def _slide(kind="slide"):
    return {"slideshow": {"slide_type": kind}}


def _slides(nb) -> list[list]:
    """The cells of each (sub-)slide, notes and skipped cells left out."""
    slides = []
    for cell in nb.cells:
        kind = L.slide_type(cell)
        if kind in ("notes", "skip"):
            continue
        if kind in ("slide", "subslide") or not slides:
            slides.append([])
        slides[-1].append(cell)
    return slides


def _words(nb, kind) -> list[str]:
    """The words of every `kind` cell in order; a table's header row repeated on its next slide counted once."""
    texts, header = [], None
    for c in nb.cells:
        if c.cell_type != kind:
            continue
        lines = c.source.split("\n")
        shown = lines[2:] if header and lines[:2] == header else lines
        starts = [i for i, line in enumerate(lines) if line.startswith("|")]  # the cell's table, if any
        header = lines[starts[0] : starts[0] + 2] if starts else None
        texts.append("\n".join(shown))
    return " ".join(texts).split()


def _printed(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def _images(nb) -> list[str]:
    return [o.data["image/png"] for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]


def _long_notebook():
    prose = "\n\n".join(f"Paragraph {i}: " + "the attention weights sum to one over the keys. " * 6 for i in range(14))
    items = "\n".join(f"- item {i}, " + "a point worth a line of its own " * 2 for i in range(30))
    table = "| n | what | why |\n|---|---|---|\n" + "\n".join(
        f"| {i} | row {i} text | " + "why " * 20 + "|" for i in range(40)
    )
    code = "\n\n".join(f"def f{i}(x):\n    y = x + {i}\n    return y * 2" for i in range(30))
    long_print = "".join(f"line {i}: {i * i}\n" for i in range(90))
    return new_notebook(
        cells=[
            new_markdown_cell(
                "# 99 · A title\n\nOne short paragraph.\n\n**You will**\n- learn\n- do", metadata=_slide()
            ),
            new_markdown_cell("## 1. Prose\n\n" + prose, metadata=_slide()),
            new_markdown_cell(items, metadata=_slide("fragment")),
            new_markdown_cell(table, metadata=_slide("-")),
            new_code_cell(
                code,
                metadata=_slide("-"),
                outputs=[
                    new_output("stream", text=long_print),
                    new_output("display_data", data={"image/png": _png(1200, 900), "text/plain": "<Figure>"}),
                    new_output("display_data", data={"image/png": _png(400, 300), "text/plain": "<Figure>"}),
                ],
            ),
            new_markdown_cell("Presenter notes: say it slowly.", metadata=_slide("notes")),
            new_code_cell("print(1)", metadata=_slide("-"), outputs=[new_output("stream", text="1\n")]),
        ]
    )


def test_every_slide_fits_and_nothing_is_lost():
    nb = _long_notebook()
    before = copy.deepcopy(nb)
    fitted = L.fit_to_slides(nb)
    assert nb == before, "fit_to_slides changed the notebook it was given"
    for slide in _slides(fitted):
        height, lead = sum(map(L.cell_height, slide)), L.cell_height(slide[0])
        limit = L.STRETCH * L.SLIDE_HEIGHT if lead <= L.INTRO else L.SLIDE_HEIGHT  # a lead-in stays with its cell
        assert height <= limit, f"a slide of {height:.0f} px: {[c.source[:40] for c in slide]}"
    # every word of prose and code, every printed line and every figure, in the same order
    assert _words(fitted, "markdown") == _words(nb, "markdown")
    assert _words(fitted, "code") == _words(nb, "code")
    assert _printed(fitted) == _printed(nb)
    assert _images(fitted) == _images(nb)
    ids = [c.id for c in fitted.cells]
    assert len(ids) == len(set(ids)), "two cells of the deck share an id"
    nbformat.validate(fitted)


def test_the_title_slide_keeps_the_title_and_first_paragraph_the_rest_goes_to_the_notes():
    fitted = L.fit_to_slides(_long_notebook())
    title, notes = fitted.cells[:2]
    assert title.source == "# 99 · A title\n\nOne short paragraph."
    assert L.slide_type(notes) == "notes" and "**You will**" in notes.source


def test_cuts_fall_between_paragraphs_items_rows_and_statements():
    fitted = L.fit_to_slides(_long_notebook())
    for cell in fitted.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("Paragraph"):
            assert cell.source.rstrip().endswith("keys."), "a paragraph was cut in the middle"
        if cell.source.lstrip().startswith("|"):
            assert cell.source.startswith("| n | what | why |\n|---|---|---|"), "a table piece lost its header row"
        if cell.cell_type == "code" and cell.source.startswith("def"):
            assert cell.source.rstrip().endswith("return y * 2"), "a function was cut in the middle"
    assert sum(c.source.startswith("| n |") for c in fitted.cells) > 1, "the 40-row table was not cut"
    held = [c for c in fitted.cells if L.OUTPUTS_ONLY in c.metadata.get("tags", [])]
    assert held and all(c.source == "" and c.outputs for c in held), "outputs that do not fit get a slide of their own"


def test_a_slide_that_fits_is_left_alone():
    nb = new_notebook(
        cells=[
            new_markdown_cell("## Short", metadata=_slide()),
            new_code_cell("x = 1", metadata=_slide("fragment"), outputs=[new_output("stream", text="ok\n")]),
        ]
    )
    assert L.fit_to_slides(nb).cells == nb.cells


def test_estimates_grow_with_what_is_shown():
    assert L.markdown_height("word " * 400) > L.markdown_height("word " * 40) > 0
    assert L.input_height("x = 1\n" * 20) == pytest.approx(L.LINE * 20 + L.CODE_PAD)
    assert L.input_height("y" * (3 * L.CODE_COLUMNS)) == pytest.approx(L.LINE * 3 + L.CODE_PAD)  # a long line wraps
    tall = new_output("display_data", data={"image/png": _png(300, 2000)})
    assert L.output_height(tall) == L.IMAGE_MAX_HEIGHT + L.IMAGE_PAD  # the template caps a figure's height
    wide = new_output("display_data", data={"image/png": _png(2 * L.IMAGE_WIDTH, 400)})
    assert L.output_height(wide) == pytest.approx(200 + L.IMAGE_PAD)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_course_notebooks_keep_every_word(path):
    nb = nbformat.read(path, as_version=4)
    fitted = L.fit_to_slides(nb)
    kept = {i: c for i, c in enumerate(nb.cells)}
    assert _words(fitted, "code") == _words(nb, "code")
    assert _words(fitted, "markdown") == _words(nb, "markdown"), f"{path.name}: prose lost or reordered"
    assert len(fitted.cells) >= len(kept)


def test_the_deck_shows_a_cut_cell_s_code_once(tmp_path):
    """build_slides hides the (empty) input box of the outputs-only sub-slides: one code box, its figures after it."""
    import build_slides

    marker = "def marker_function_for_the_deck(x):"
    cell = new_code_cell(
        marker + "\n    return x\n" + "\n".join(f"y{i} = {i}" for i in range(20)),
        metadata=_slide(),
        outputs=[new_output("display_data", data={"image/png": _png(500, 500), "text/plain": "<Figure>"})] * 2,
    )
    nb = new_notebook(cells=[new_markdown_cell("# 99 · Demo", metadata=_slide()), cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "99_demo.ipynb"
    nbformat.write(nb, path)
    assert any(L.OUTPUTS_ONLY in c.metadata.get("tags", []) for c in L.fit_to_slides(nb).cells)
    page = build_slides.convert(path, "slides", tmp_path).read_text()
    assert page.count("marker_function_for_the_deck") == 1
    body = page[page.index("<body") :]
    assert body.count("jp-InputArea-editor") == 1, "an outputs-only sub-slide shows an empty code box"
    assert page.count("<section") >= 3, "the figures did not get sub-slides of their own"
