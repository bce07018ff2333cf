"""Notebook 06's recipe (course_utils.vit_vs_cnn) and its data-hunger script (scripts/data_hunger.py)."""

import course_utils  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import subprocess
import sys

import pytest
import torch

from course_utils.measure import count_parameters
from course_utils.paths import ROOT
from course_utils.vit_vs_cnn import SmallCNN, accuracy, batches, small_vit, train_model, train_with_early_stopping


def images(n, seed):
    """(n, 1, 28, 28) noise with a bright square in one of 10 places: the label is where the square is."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    X = torch.randn(n, 1, 28, 28, generator=g) * 0.3
    for i, c in enumerate(y.tolist()):
        r, k = divmod(c, 5)
        X[i, 0, 4 + 12 * r : 10 + 12 * r, 1 + 5 * k : 6 + 5 * k] += 2.0
    return X, y


def test_the_two_models_are_the_notebooks_sizes():
    assert (count_parameters(small_vit()), count_parameters(SmallCNN())) == (139_018, 150_514)  # the notebook's table
    assert small_vit()(torch.zeros(2, 1, 28, 28)).shape == SmallCNN()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_early_stopping_keeps_the_best_state_and_learns():
    X, y = images(256, 0)
    Xv, yv = images(200, 1)
    run = train_with_early_stopping(SmallCNN, X, y, Xv, yv, epochs=1, min_steps=40, evals=4, seed=0)
    assert run["steps"] == 40  # evals=4: a check every 10 steps, the last one at the end of training
    assert [s for s, _ in run["curve"]] == [10, 20, 30, 40], run["curve"]
    assert run["val_acc"] == max(a for _, a in run["curve"])
    assert accuracy(run["model"], Xv, yv) == pytest.approx(run["val_acc"]), "the model should come back at its best"
    assert run["val_acc"] > 0.5, f"the CNN should find the square: {run['curve']}"
    again = train_with_early_stopping(SmallCNN, X, y, Xv, yv, epochs=1, min_steps=40, evals=4, seed=0)
    assert again["curve"] == run["curve"], "the same seed should give the same run"


def test_a_big_set_gets_its_epochs_and_a_small_one_its_minimum_steps():
    X, y = images(300, 0)
    Xv, yv = images(50, 1)
    run = train_with_early_stopping(small_vit, X, y, Xv, yv, epochs=2, min_steps=1, evals=1, seed=0)
    assert run["steps"] == 5 and run["epochs"] == pytest.approx(5 * 128 / 300)  # ceil(2 * 300 / 128)
    small = train_with_early_stopping(small_vit, X[:64], y[:64], Xv, yv, epochs=1, min_steps=3, evals=1, seed=0)
    assert small["steps"] == 3 and small["epochs"] == pytest.approx(3.0)  # a batch of 64 = the whole set


def test_bad_input_says_how_to_fix_it():
    X, y = images(20, 0)
    with pytest.raises(ValueError, match="smaller batch_size"):
        next(batches(X, y, 32, 0))
    with pytest.raises(ValueError, match="give a budget"):
        train_model(SmallCNN(), X, y)
    with pytest.raises(ValueError, match="same number"):
        accuracy(SmallCNN(), X, y[:5])
    with pytest.raises(ValueError, match="epochs"):
        train_with_early_stopping(SmallCNN, X, y, X, y, epochs=0)


def test_the_data_hunger_script_runs_and_refuses_bad_sizes():
    script = str(ROOT / "scripts" / "data_hunger.py")
    bad = subprocess.run([sys.executable, script, "--sizes", "60000"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--sizes must lie in" in bad.stderr
    args = ["--sizes", "128", "256", "--epochs", "1", "--min-steps", "2", "--evals", "1", "--threads", "1"]
    run = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line.split() for line in run.stdout.splitlines() if line.strip().startswith(("128", "256"))]
    assert [(r[0], r[1]) for r in rows] == [("128", "vit"), ("128", "cnn"), ("256", "vit"), ("256", "cnn")], run.stdout
    assert "CNN - ViT on the test set: 128:" in run.stdout
