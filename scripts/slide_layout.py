"""Cut an executed notebook into slides that fit a projector, before nbconvert turns it into a deck.

A notebook is written to be read, not shown: a section's prose, three code cells and a figure
share one slide. `fit_to_slides(nb)` returns a copy (the notebook on disk is never touched) in which

- the title slide carries the title and its first paragraph; the rest of that cell goes to the notes;
- a cell that would overflow the slide it joins starts a sub-slide of its own (unless all it would
  leave behind is a line or two of lead-in: then the two stay together, a little smaller);
- a markdown cell taller than a slide is cut between paragraphs (a list between items);
- a code cell taller than a slide is cut between top-level statements; its outputs follow on
  sub-slides of their own (the input hidden there, tag `slide-outputs`) when they do not fit beside it;
- a long printed output is cut between lines;
- papermill's injected-parameters cell is skipped.

Heights are estimated in the deck's own CSS pixels (reveal's 960 x 700 canvas); the constants were
fitted to heights measured in Chromium on the course's nine decks (code and printed lines exactly,
prose within about 15 %). The template's fit script shrinks a slide by up to 20 % for what the
estimate misses, and tests/test_slides_browser.py fails on any slide that still does not fit.
"""

from __future__ import annotations

import base64
import copy
import math
import re
import struct

import nbformat

SLIDE_HEIGHT = 640  # px of the 700 px canvas a slide may fill (reveal's margins, a little slack for estimates)
# measured in Chromium with the template's 16 px code font: px = LINE * wrapped lines + pad
LINE, CODE_PAD, OUTPUT_PAD = 19.1, 21, 14
CODE_COLUMNS, OUTPUT_COLUMNS = 96, 86  # characters per line before the template wraps it
IMAGE_WIDTH, IMAGE_MAX_HEIGHT, IMAGE_PAD = 940, 560, 55  # a figure is shown at its size, narrowed and capped
# markdown, fitted by least squares: px per wrapped line of MD_COLUMNS characters, per paragraph, ...
# (fenced code in markdown was too rare to fit: it gets the code LINE)
MD_COLUMNS = 100
MD = {
    "text": 25.9,
    "para": 35.8,
    "h1": 98.7,
    "h2": 27.6,
    "h3": 14.7,
    "table": 60,
    "math": 56.4,
    "item": 15.7,
    "code": 19.1,
}
INTRO, STRETCH = 160, 1.15  # a line or two of lead-in stays with what it introduces, the slide shrunk a little
TITLE_CHARS = 320  # the title slide keeps its first paragraph up to about three lines
OUTPUTS_ONLY = "slide-outputs"  # tag of a cell that shows outputs only (build_slides hides its input)
ITEM = re.compile(r"\s*([-*+]|\d+\.)\s")


def slide_type(cell) -> str:
    return cell.metadata.get("slideshow", {}).get("slide_type", "-")


def _set_type(cell, kind: str):
    cell.metadata.setdefault("slideshow", {})["slide_type"] = kind
    return cell


def markdown_height(source: str) -> float:
    """Estimated px of a rendered markdown cell."""
    blocks = [b for b in re.split(r"\n\s*\n", source.strip()) if b.strip()]
    height = MD["para"] * len(blocks)
    in_math = in_code = False
    for line in source.splitlines():
        s = line.strip()
        if s.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            height += MD["code"]
        elif s.startswith("$$"):
            if s.endswith("$$") and len(s) > 2:
                height += MD["math"]
            else:
                in_math = not in_math
                height += MD["math"] / 2
        elif in_math or not s:
            continue
        elif s.startswith("# "):
            height += MD["h1"]
        elif s.startswith("## "):
            height += MD["h2"] * math.ceil(len(s) / 50)
        elif s.startswith("### "):
            height += MD["h3"] * math.ceil(len(s) / 70)
        elif s.startswith("|"):
            height += 0 if set(s) <= set("|-: ") else _row_height(s)
        else:
            text = re.sub(r"[*`]", "", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", s))
            height += MD["text"] * math.ceil(len(text) / MD_COLUMNS) + (MD["item"] if ITEM.match(s) else 0)
    return height


def _row_height(row: str) -> float:
    """A table row is as tall as its most wrapped cell (columns share the width)."""
    cells = [c.strip() for c in row.strip().strip("|").split("|")]
    width = 1.3 * MD_COLUMNS / len(cells)
    return MD["table"] / 2 + MD["text"] * max(math.ceil(max(len(c), 1) / width) for c in cells)


def _lines(text: str, columns: int) -> int:
    return sum(max(1, math.ceil(len(line) / columns)) for line in text.rstrip("\n").split("\n"))


def output_height(output) -> float:
    """Estimated px of one output: printed lines, a figure at its size (capped), a plotly figure, a table."""
    if output.output_type == "stream":
        return LINE * _lines(output.text, OUTPUT_COLUMNS) + OUTPUT_PAD
    if output.output_type == "error":
        return LINE * _lines("\n".join(output.traceback), OUTPUT_COLUMNS) + OUTPUT_PAD
    data = output.get("data", {})
    if "image/png" in data:
        header = base64.b64decode(data["image/png"][:64])
        width, height = struct.unpack(">II", header[16:24])
        return min(IMAGE_MAX_HEIGHT, height * min(1.0, IMAGE_WIDTH / width)) + IMAGE_PAD
    if "application/vnd.plotly.v1+json" in data:
        layout = data["application/vnd.plotly.v1+json"].get("layout", {})
        return layout.get("height", 450) + IMAGE_PAD
    if "text/html" in data:
        html = data["text/html"]
        return 30 * max(1, html.count("<tr")) + 30 if "<table" in html else 60
    if "application/vnd.jupyter.widget-view+json" in data:
        return 60
    return LINE * _lines(data.get("text/plain", ""), OUTPUT_COLUMNS) + OUTPUT_PAD


def input_height(source: str) -> float:
    return LINE * _lines(source, CODE_COLUMNS) + CODE_PAD if source.strip() else 0


def cell_height(cell) -> float:
    """Estimated px of a cell on a slide (0 for notes and skipped cells)."""
    if slide_type(cell) in ("notes", "skip"):
        return 0
    if cell.cell_type == "markdown":
        return markdown_height(cell.source)
    if cell.cell_type != "code":
        return 0
    shown = "" if OUTPUTS_ONLY in cell.metadata.get("tags", []) else cell.source
    return input_height(shown) + sum(output_height(o) for o in cell.outputs)


def _blocks(source: str) -> list[str]:
    """Markdown blocks that may end a slide: paragraphs, each list item, never inside a formula or code."""
    blocks, current, fence = [], [], False
    for line in source.split("\n"):
        s = line.strip()
        if s.startswith("```") or s == "$$":
            fence = not fence
        starts_item = not fence and ITEM.match(line) and current and not line.startswith(" ")
        if not fence and (not s or starts_item) and current and any(x.strip() for x in current):
            blocks.append("\n".join(current).strip("\n"))
            current = []
        current.append(line)
    if any(x.strip() for x in current):
        blocks.append("\n".join(current).strip("\n"))
    return blocks


def _table_pieces(block: str) -> list[str]:
    """A table taller than a slide as several tables, each with the header row again."""
    lines = block.split("\n")
    if not all(line.lstrip().startswith("|") for line in lines) or len(lines) < 3:
        return [block]
    if markdown_height(block) <= SLIDE_HEIGHT:
        return [block]
    head = "\n".join(lines[:2]) + "\n"
    groups = _pack(lines[2:], lambda rows: markdown_height(head + rows), "\n".join)
    return [head + rows for rows in groups]


def _pack(pieces: list, height, join) -> list:
    """Greedy: consecutive pieces joined while their height stays within a slide."""
    pages, page = [], []
    for piece in pieces:
        if page and height(join(page + [piece])) > SLIDE_HEIGHT:
            pages.append(join(page))
            page = []
        page.append(piece)
    if page:
        pages.append(join(page))
    return pages


def _join_blocks(blocks: list[str]) -> str:
    out = blocks[0]
    for b in blocks[1:]:  # list items stay one list: no blank line between items
        out += ("\n" if ITEM.match(b) and ITEM.match(out.split("\n")[-1].lstrip() or "x") else "\n\n") + b
    return out


def split_markdown(cell) -> list:
    """The cell cut between blocks into pieces that each fit a slide (one piece if it already fits)."""
    if markdown_height(cell.source) <= SLIDE_HEIGHT:
        return [cell]
    blocks = [piece for block in _blocks(cell.source) for piece in _table_pieces(block)]
    pieces = _pack(blocks, markdown_height, _join_blocks)
    cells = []
    for i, text in enumerate(pieces):
        piece = copy.deepcopy(cell)
        piece.source = text
        if i:
            piece.id = f"{cell.id}-{i}"
            _set_type(piece, "subslide")
        cells.append(piece)
    return cells


def _statements(source: str) -> list[str]:
    """Code cut before each top-level line that follows a blank line: the places a reader pauses too."""
    lines = source.split("\n")
    chunks: list[list[str]] = [[]]
    for i, line in enumerate(lines):
        top = line[:1] not in ("", " ", "\t", ")", "]", "}")
        if top and chunks[-1] and i and not lines[i - 1].strip():
            chunks.append([])
        chunks[-1].append(line)
    return ["\n".join(c) for c in chunks]


def _hard_cut(source: str, lines_per_slide: int) -> list[str]:
    lines = source.split("\n")
    return ["\n".join(lines[i : i + lines_per_slide]) for i in range(0, len(lines), lines_per_slide)]


def split_code(cell) -> list:
    """The cell's input cut between statements to fit slides; outputs on their own sub-slides where needed."""
    per_slide = int((SLIDE_HEIGHT - CODE_PAD) / LINE)
    chunks = []
    for statement in _statements(cell.source):
        chunks.extend([statement] if input_height(statement) <= SLIDE_HEIGHT else _hard_cut(statement, per_slide))
    sources = [s.strip("\n") for s in _pack(chunks, input_height, "\n".join)] if cell.source.strip() else [""]
    cells = []
    for i, text in enumerate(sources):
        piece = copy.deepcopy(cell)
        piece.source, piece.outputs = text, []
        if i:
            piece.id = f"{cell.id}-{i}"
            piece.execution_count = None
            _set_type(piece, "subslide")
        cells.append(piece)
    room = SLIDE_HEIGHT - input_height(sources[-1])
    holder = cells[-1]
    for output in _outputs(cell.outputs):
        h = output_height(output)
        if h > room and (holder.outputs or holder.source.strip()):
            holder = copy.deepcopy(cell)
            holder.id = f"{cell.id}-out{len(cells)}"
            holder.source, holder.outputs = "", []
            holder.metadata["tags"] = [*cell.metadata.get("tags", []), OUTPUTS_ONLY]
            _set_type(holder, "subslide")
            cells.append(holder)
            room = SLIDE_HEIGHT
        holder.outputs.append(output)
        room -= h
    return cells


def _outputs(outputs) -> list:
    """The outputs, a printed text taller than a slide cut between its lines."""
    per_slide = int((SLIDE_HEIGHT - OUTPUT_PAD) / LINE)
    out = []
    for o in outputs:
        if o.output_type == "stream" and output_height(o) > SLIDE_HEIGHT:
            for text in _hard_cut(o.text.rstrip("\n"), per_slide):
                piece = copy.deepcopy(o)
                piece.text = text + "\n"
                out.append(piece)
        else:
            out.append(o)
    return out


def title_slide(cell) -> list:
    """The title cell: its heading and first paragraph on the slide, the rest in the presenter notes."""
    blocks = [b for b in re.split(r"\n\s*\n", cell.source.strip()) if b.strip()]
    if len(blocks) < 3 and markdown_height(cell.source) <= SLIDE_HEIGHT:
        return [cell]
    head, rest = blocks[:2], blocks[2:]
    if len(head) > 1 and len(head[1]) > TITLE_CHARS:  # keep whole sentences, about three lines of them
        sentences = re.split(r"(?<=[.!?])\s+", head[1])
        kept = sentences[0]
        for s in sentences[1:]:
            if len(kept) + len(s) + 1 > TITLE_CHARS:
                break
            kept += " " + s
        rest.insert(0, head[1][len(kept) :].strip())
        head[1] = kept
    shown = copy.deepcopy(cell)
    shown.source = "\n\n".join(head)
    notes = nbformat.v4.new_markdown_cell("\n\n".join(rest), metadata={"slideshow": {"slide_type": "notes"}})
    notes.id = f"{cell.id}-notes"
    return [shown, notes]


def fit_to_slides(nb):
    """A copy of `nb` whose cells are cut and given sub-slide breaks so that each slide fits (see module doc)."""
    nb = copy.deepcopy(nb)
    cells, used = [], 0.0
    first_markdown = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), None)
    for index, cell in enumerate(nb.cells):
        if "injected-parameters" in cell.metadata.get("tags", []):
            _set_type(cell, "skip")  # papermill's "SMOKE = True" is not for the room
        if index == first_markdown and cell.source.startswith("# "):
            pieces = title_slide(cell)
        elif cell.cell_type == "markdown" and slide_type(cell) not in ("notes", "skip"):
            pieces = split_markdown(cell)
        elif cell.cell_type == "code" and slide_type(cell) != "skip":
            pieces = split_code(cell)
        else:
            pieces = [cell]
        for piece in pieces:
            h = cell_height(piece)
            kind = slide_type(piece)
            if kind in ("slide", "subslide"):
                used = h
            elif (
                h
                and used + h > SLIDE_HEIGHT
                and used > 0
                and not (used <= INTRO and used + h <= STRETCH * SLIDE_HEIGHT)
            ):
                _set_type(piece, "subslide")
                used = h
            else:
                used += h
            cells.append(piece)
    nb.cells = cells
    return nb
