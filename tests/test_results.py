"""One source for every measured figure: results/*.json, the README's table made from them, and tagged quotes."""

from __future__ import annotations

import json

import nbformat
import pytest
import results as results_script  # scripts/results.py
from notebook_runner import NOTEBOOKS, ROOT

from course_utils.tools import results


def test_the_readme_table_is_made_from_the_results_files():
    """An edit by hand to the README's table (instead of results/<nb>.json) fails here."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert results_script.updated(readme, results.render_table()) == readme, (
        "README.md's results table differs from results/*.json: edit the json, then `make results`"
    )


def test_every_row_says_what_where_and_how():
    for path in sorted(results.RESULTS_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        ids = [r["id"] for r in data["rows"]]
        assert len(ids) == len(set(ids)), f"{path.name}: two rows share an id"
        assert path.stem in results.ORDER, f"{path.name}: name a results file after its notebook (00..09) or 'all'"
        for r in data["rows"]:
            for field in ("what", "figure", "machine", "command"):
                assert r.get(field), f"{path.name} row {r['id']!r} has no {field}"
            assert "{" not in results.figure(r).replace("{}", ""), (
                f"{path.name} row {r['id']!r}: a placeholder unfilled"
            )


def _quoting_texts():
    yield "README.md", (ROOT / "README.md").read_text(encoding="utf-8")
    for nb in NOTEBOOKS:
        cells = nbformat.read(nb, as_version=4).cells
        yield nb.name, "\n".join(c.source for c in cells if c.cell_type == "markdown")


def test_every_quoted_figure_agrees_with_its_results_file():
    tagged = 0
    for name, text in _quoting_texts():
        tagged += text.count("<!-- result ")
        assert results.misquoted(text) == [], f"{name} quotes figures its results file does not hold"
    assert tagged >= 7, "the tagged quotes (<!-- result nb/row/key -->) went missing"


def test_no_tagged_quote_starts_a_markdown_line():
    """A line that starts with `<!--` opens an HTML block in Markdown: the paragraph breaks there and the
    following lines render as raw HTML (seen in JupyterLab). The tag must follow a word on its line."""
    bad = [
        f"{name}: {line.strip()[:60]!r}"
        for name, text in _quoting_texts()
        for line in text.splitlines()
        if line.lstrip().startswith("<!-- result ")
    ]
    assert bad == [], "move the word before each tag onto its line:\n" + "\n".join(bad)


@pytest.fixture
def store(tmp_path):
    results.record(
        "03",
        "speed",
        {"seconds": 1.2043, "rate": 12345.0},
        folder=tmp_path,
        date="2026-01-01",
        what="a speed",
        figure="{seconds:.2f} s, {rate:,.0f} per s, a set {like this}",
        machine="2-core CPU",
        command="`python bench.py`",
    )
    return tmp_path


def test_a_quote_is_checked_at_the_precision_it_is_written_with(store):
    ok = "took <!-- result 03/speed/seconds -->1.20 s, or **<!-- result 03/speed/seconds -->1.2** s; <!-- result 03/speed/rate -->12,345"
    assert results.misquoted(ok, store) == []
    (wrong,) = results.misquoted("took <!-- result 03/speed/seconds -->1.30 s", store)
    assert "1.30" in wrong and "1.2043" in wrong
    (unknown,) = results.misquoted("<!-- result 03/speed/nothing -->1", store)
    assert "no value 'nothing'" in unknown
    (no_file,) = results.misquoted("<!-- result 09/speed/seconds -->1", store)
    assert "no results file" in no_file


def test_record_updates_a_row_and_refuses_what_is_not_a_number(store):
    r = results.row("03", "speed", store)
    assert results.figure(r) == "1.20 s, 12,345 per s, a set {like this}"
    results.record("03", "speed", {"seconds": 2.5}, folder=store, date="2026-02-02")
    r = results.row("03", "speed", store)
    assert r["values"] == {"seconds": 2.5, "rate": 12345.0} and r["date"] == "2026-02-02"
    assert "| 03 | a speed | 2.50 s, 12,345 per s, a set {like this} (2026-02-02) |" in results.render_table(store)
    with pytest.raises(TypeError, match="must be numbers"):
        results.record("03", "speed", {"seconds": "fast"}, folder=store)
    with pytest.raises(ValueError, match="needs"):
        results.record("03", "new-row", {"x": 1.0}, folder=store)
    with pytest.raises(KeyError, match="its rows"):
        results.row("03", "missing", store)


def test_only_make_run_records(monkeypatch):
    monkeypatch.delenv("COURSE_RECORD_RESULTS", raising=False)
    assert not results.recording()
    monkeypatch.setenv("COURSE_RECORD_RESULTS", "1")
    assert results.recording()
