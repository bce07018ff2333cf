"""scripts/hub_capacity.py: which parameters it shortens, its refusals, and one real measurement (notebook 00)."""

import json

import hub_capacity  # scripts/ is on sys.path (conftest)
import nbformat
import pytest
from notebook_runner import ROOT


def test_only_time_budgets_and_step_counts_are_shortened():
    nb = nbformat.read(ROOT / "notebooks" / "04_translation.ipynb", as_version=4)
    short = hub_capacity._overrides(nb)
    assert short["TRAIN_SECONDS"] == 3 and short["NUMBER_STEPS"] == 5
    assert "N_TRAIN_PAIRS" not in short and "COMPARE_CONFIGS" not in short, "sizes stay as in full mode"
    assert all(k.endswith(("_SECONDS", "_STEPS")) for k in short)


def test_bad_arguments_are_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        hub_capacity.main(["99_nothing"])
    assert "no notebook named ['99_nothing']; known: 00_start_here" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        hub_capacity.main(["--limit", "0", "00_start_here"])
    assert "--limit must be a positive number of seconds" in capsys.readouterr().err


@pytest.mark.notebook
def test_a_smoke_measurement_of_notebook_00(capsys):
    assert hub_capacity.main(["--smoke", "00_start_here"]) == 0
    row = json.loads((hub_capacity.build_dir("hub-capacity") / "capacity.json").read_text())[0]
    assert row["notebook"] == "00_start_here" and row["failed_cells"] == [] and not row["stopped"]
    assert 100 < row["peak_mib"] < 4000, "a kernel that imports torch holds a few hundred MiB"
    assert "00_start_here" in capsys.readouterr().out
