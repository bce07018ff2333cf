"""One source for every measured figure: `results/<notebook>.json`, written by the runs, quoted everywhere else.

A results file holds rows, one per measurement, each with its `what`, `machine`, `command`,
`date` and `values` (the numbers the run wrote) and a `figure` sentence that names them:

    {"id": "bpe-speed", "what": "...", "figure": "ours {train_s_ours:.2f} s ...", "values": {"train_s_ours": 1.8}, ...}

- a run (a benchmark, a notebook in full mode) calls `record(...)` to store its numbers;
- `make results` writes the README's results table from every row (`render_table`);
- prose quotes a number with a tag in front of it, `<!-- result 03/bpe-speed/train_s_ours -->1.80`
  (an HTML comment: invisible in JupyterLab, on GitHub and in the slides), and
  `misquoted(text)` lists the quotes that differ from the file at the precision written, so
  tests/test_results.py fails when someone edits a figure by hand.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from pathlib import Path

from course_utils.paths import ROOT

RESULTS_DIR = ROOT / "results"
ORDER = ["all", "00", "01", "02", "03", "04", "05", "06", "07", "08", "09"]  # the README table's order
QUOTE = re.compile(r"<!-- result ([\w.-]+)/([\w.-]+)/(\w+) -->\s*\**\s*(-?[\d,]*\.?\d+)")
PLACEHOLDER = re.compile(r"\{(\w+)(:[^{}]*)?\}")


def _path(notebook: str, folder: Path | None) -> Path:
    return (folder or RESULTS_DIR) / f"{notebook}.json"


def load(notebook: str, folder: Path | None = None) -> dict:
    """The results file of `notebook` ("03", "all"); raises FileNotFoundError naming the choices."""
    path = _path(notebook, folder)
    if not path.exists():
        known = sorted(p.stem for p in (folder or RESULTS_DIR).glob("*.json"))
        raise FileNotFoundError(f"no results file {path.name}; there are {known}")
    return json.loads(path.read_text(encoding="utf-8"))


def row(notebook: str, row_id: str, folder: Path | None = None) -> dict:
    """One row of a results file; KeyError naming the rows there are."""
    rows = load(notebook, folder)["rows"]
    for r in rows:
        if r["id"] == row_id:
            return r
    raise KeyError(f"results/{notebook}.json has no row {row_id!r}; its rows: {[r['id'] for r in rows]}")


def value(notebook: str, row_id: str, key: str, folder: Path | None = None) -> float:
    values = row(notebook, row_id, folder)["values"]
    if key not in values:
        raise KeyError(f"results/{notebook}.json row {row_id!r} has no value {key!r}; it has {sorted(values)}")
    return values[key]


def figure(r: dict) -> str:
    """The row's `figure` sentence with its {placeholders} filled from its values (other braces kept)."""

    def fill(m):
        if m.group(1) not in r.get("values", {}):
            return m.group(0)
        return format(r["values"][m.group(1)], (m.group(2) or ":")[1:])

    return PLACEHOLDER.sub(fill, r["figure"])


def recording() -> bool:
    """True when this run should write its figures: `make run` (full mode) sets COURSE_RECORD_RESULTS=1.

    A student's own full run leaves the committed results alone.
    """
    return os.environ.get("COURSE_RECORD_RESULTS", "0") == "1"


def record(
    notebook: str, row_id: str, values: dict, *, folder: Path | None = None, date: str | None = None, **fields
) -> Path:
    """Store a run's `values` in row `row_id` of results/<notebook>.json (added if new), dated today.

    `fields` (what, figure, machine, command) are required for a new row and update an old one.
    """
    bad = {k: v for k, v in values.items() if not isinstance(v, (int, float)) or isinstance(v, bool)}
    if bad:
        raise TypeError(f"record: values must be numbers (quote text in `figure`), got {bad}")
    path = _path(notebook, folder)
    data = load(notebook, folder) if path.exists() else {"notebook": notebook, "rows": []}
    old = next((r for r in data["rows"] if r["id"] == row_id), None)
    if old is None:
        missing = [k for k in ("what", "figure", "machine", "command") if k not in fields]
        if missing:
            raise ValueError(f"record: a new row {row_id!r} needs {missing}")
        old = {"id": row_id, **fields}
        data["rows"].append(old)
    old.update(fields)
    old["values"] = {**old.get("values", {}), **values}
    old["date"] = date or datetime.date.today().isoformat()
    figure(old)  # a placeholder with a bad format spec fails now, not when the README is written
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def render_table(folder: Path | None = None) -> str:
    """The README's results table: every row of every results file, in notebook order."""
    files = sorted(
        (folder or RESULTS_DIR).glob("*.json"),
        key=lambda p: (p.stem not in ORDER, ORDER.index(p.stem) if p.stem in ORDER else 0, p.stem),
    )
    lines = ["| notebook | what | figure | machine | command |", "|---|---|---|---|---|"]
    for path in files:
        for r in json.loads(path.read_text(encoding="utf-8"))["rows"]:
            text = figure(r) + (f" ({r['date']})" if r.get("date") else "")
            lines.append(f"| {path.stem} | {r['what']} | {text} | {r['machine']} | {r['command']} |")
    return "\n".join(lines) + "\n"


def misquoted(text: str, folder: Path | None = None) -> list[str]:
    """Each `<!-- result nb/row/key -->number` in `text` whose number differs from the results file.

    The number is compared at the precision it is written with (1.80 is 1.8 to two decimals;
    12,340 is 12340 to whole units). A tag naming no value counts as misquoted.
    """
    problems = []
    for m in QUOTE.finditer(text):
        notebook, row_id, key, written = m.groups()
        try:
            true = value(notebook, row_id, key, folder)
        except (FileNotFoundError, KeyError) as e:
            problems.append(f"{m.group(0)!r}: {e}")
            continue
        digits = len(written.split(".")[1]) if "." in written else 0
        if round(true, digits) != round(float(written.replace(",", "")), digits):
            problems.append(f"{notebook}/{row_id}/{key}: the text says {written}, results/{notebook}.json {true}")
    return problems
