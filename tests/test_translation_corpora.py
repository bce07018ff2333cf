"""scripts/translation_corpora.py, the corpus race of notebook 04: its table is read from the runs' own files."""

import json

import pytest
import translation_corpora  # scripts/translation_corpora.py (scripts/ is on sys.path, conftest)


def test_translation_corpora_collects_recorded_runs_and_names_a_missing_one(tmp_path, capsys):
    """scripts/translation_corpora.py --collect reads each candidate's recipe.json into one table."""
    run = {"epochs": 2.5, "valid_loss": 4.2, "test_bleu": 1.23, "test_chrf": 11.5}
    (tmp_path / "ding").mkdir()
    (tmp_path / "ding" / "recipe.json").write_text(json.dumps({"recipe": {}, "results": run}))
    assert translation_corpora.main(["--collect", "--out", str(tmp_path), "--only", "ding"]) == 0
    row = capsys.readouterr().out.splitlines()[-1].split()
    assert row[0] == "ding" and row[-2:] == ["1.23", "11.50"]
    with pytest.raises(SystemExit, match="wesnoth/recipe.json is missing"):
        translation_corpora.main(["--collect", "--out", str(tmp_path), "--only", "ding,wesnoth"])
    with pytest.raises(ValueError, match="corpus must be one of"):
        translation_corpora.main(["--collect", "--only", "europarl"])
