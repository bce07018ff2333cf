"""scripts/figures.py: every PNG output of an executed notebook becomes a file, and the files one contact sheet."""

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nbformat
import pytest

import figures


def png_bytes(color: str) -> bytes:
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [0, 1], color=color)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


@pytest.fixture
def executed(tmp_path):
    nb = nbformat.v4.new_notebook()
    cells = [
        nbformat.v4.new_code_cell("plot()", execution_count=3),
        nbformat.v4.new_code_cell("print(1)", execution_count=4),
    ]
    pngs = [png_bytes("red"), png_bytes("blue")]
    cells[0].outputs = [
        nbformat.v4.new_output(
            "display_data", data={"image/png": base64.b64encode(p).decode(), "text/plain": "<Figure>"}
        )
        for p in pngs
    ]
    cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), *cells]
    path = tmp_path / "01_demo.ipynb"
    nbformat.write(nb, path)
    return path, pngs


def test_every_png_output_is_written_by_cell_and_order(executed, tmp_path):
    path, pngs = executed
    out = tmp_path / "figs"
    (out).mkdir()
    (out / "cell999-0.png").write_bytes(b"stale")  # a figure from an earlier run is removed
    written = figures.extract(path, out)
    assert [p.name for p in written] == ["cell003-0.png", "cell003-1.png"]
    assert [p.read_bytes() for p in written] == pngs
    assert sorted(p.name for p in out.iterdir()) == ["cell003-0.png", "cell003-1.png"]


def test_contact_sheet_tiles_all_figures(executed, tmp_path):
    path, _ = executed
    written = figures.extract(path, tmp_path / "figs")
    assert len(written) == 2
    column = plt.imread(figures.contact_sheet(written, tmp_path / "column.png", "01_demo", columns=1))
    row = plt.imread(figures.contact_sheet(written, tmp_path / "row.jpg", "01_demo", columns=2))
    assert column.shape[0] > row.shape[0] and row.shape[1] > column.shape[1]  # two figures under or beside each other
    assert column.std() > 0.01, "the sheet is blank"
    assert figures.contact_sheet([], tmp_path / "none.png", "empty") is None


def test_unknown_notebook_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        figures.main(["--only", "99_nothing"])
    assert "choose from" in capsys.readouterr().err
