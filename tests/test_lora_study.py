"""Notebook 07's study recipe (course_utils.lora_study) and its seeds script (scripts/lora_seeds.py)."""

import course_utils  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from course_utils.finetune import minilm_folder
from course_utils.lora import apply_lora
from course_utils.lora_study import (
    Classifier,
    accuracy,
    batched_features,
    finetune,
    fresh_classifier,
    linear_probe,
    passages,
    split_book,
    which_novel,
)
from course_utils.paths import ROOT


def books(n_books=3, n_words=3000):
    """Fake novels whose words name their book, so the label is learnable and every passage is distinct."""
    return {f"Book {b}": " ".join(f"b{b}w{i}" for i in range(n_words)) for b in range(n_books)}


def test_the_split_keeps_validation_and_test_apart_from_training():
    data = which_novel(books(), seed=3, passage_words=10, n_train=20, n_test=8, n_val=6)
    assert [len(data[s]) for s in ("train", "val", "test")] == [60, 18, 24]
    for split in ("train", "val", "test"):  # balanced classes
        assert sorted({y for _, y in data[split]}) == [0, 1, 2]
        assert all(sum(y == c for _, y in data[split]) == len(data[split]) // 3 for c in range(3))
    train = {p for p, _ in data["train"]}
    assert not train & {p for p, _ in data["val"]}, "a validation passage is also a training passage"
    assert not {p for p, _ in data["test"]} & set(data["pretrain"]), "a test passage comes from a training stretch"
    assert {p for p, _ in data["val"]} <= set(data["pretrain"]), "validation passages come from the training stretches"
    for p, y in data["train"] + data["val"] + data["test"]:
        assert p.startswith(f"b{y}w"), "a passage carries another novel's label"


def test_asking_for_validation_leaves_train_and_test_as_they_were_and_seeds_differ():
    without = which_novel(books(), seed=1, passage_words=10, n_train=20, n_test=8)
    with_val = which_novel(books(), seed=1, passage_words=10, n_train=20, n_test=8, n_val=6)
    assert without["train"] == with_val["train"] and without["test"] == with_val["test"]
    other = which_novel(books(), seed=2, passage_words=10, n_train=20, n_test=8)
    assert other["train"] != without["train"]


def test_passages_and_stretches():
    assert passages("CHAPTER IV one two three four five six seven", 3) == ["one two three", "four five six"]
    train, test = split_book([str(i) for i in range(100)], n_stretches=20, test_every=5)
    assert test == [str(i) for i in range(100) if (i // 5) % 5 == 4] and len(train) == 80


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(n_train=10_000), "ask for fewer"),
        (dict(n_train=0), "n_train"),
        (dict(n_val=-1), "n_val"),
    ],
)
def test_bad_requests_say_what_to_change(kwargs, words):
    with pytest.raises(ValueError, match=words):
        which_novel(books(), passage_words=10, **kwargs)


def test_no_books_says_where_they_come_from():
    with pytest.raises(ValueError, match="load_austen"):
        which_novel({})


class ToyEncoder(nn.Module):
    """ids (B, T) -> token vectors (B, T, 8): an embedding and one linear layer for LoRA to adapt."""

    def __init__(self, vocab=20):
        super().__init__()
        self.emb, self.proj = nn.Embedding(vocab, 8), nn.Linear(8, 8)

    def forward(self, ids, mask):
        return self.proj(self.emb(ids))


def toy_task(n=64, seed=0):
    """Class = whether the passage's tokens come from the low or the high half of the vocabulary."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    X = torch.randint(1, 10, (n, 5), generator=g) + 10 * y[:, None]  # (n, 5) ids in 1..9 or 11..19
    return X, torch.ones_like(X, dtype=torch.bool), y


def trained(lora: bool, seed=0, lr=5e-2):
    torch.manual_seed(0)
    encoder = ToyEncoder().requires_grad_(False).eval()
    X, M, Y = toy_task()
    probe = linear_probe(batched_features(Classifier(encoder, nn.Linear(8, 2)), X, M), Y, 2, 1e-2, 5, seed)
    model = fresh_classifier(encoder, probe, seed)
    if lora:
        apply_lora(model.encoder, ["proj"], r=2, alpha=2, rslora=True)
        model.head.requires_grad_(True)
    info = finetune(model, X, M, Y, lr, 60, 16, 8, seed)
    return encoder, probe, model, info, (X, M, Y)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_finetune_learns_leaves_the_start_alone_and_repeats_with_its_seed(lora):
    encoder, probe, model, info, (X, M, Y) = trained(lora)
    start = Classifier(encoder, probe)
    before, after = accuracy(start, X, M, Y), accuracy(model, X, M, Y)  # 0.73 -> 1.0 (full), 0.94 (LoRA r = 2)
    assert after >= 0.9 and after > before + 0.15, f"fine-tuning should learn the toy task: {before:.2f} -> {after:.2f}"
    assert model.encoder is not encoder and not any(p.requires_grad for p in encoder.parameters())
    assert {"peak_bytes", "adam_bytes", "seconds"} <= set(info) and info["adam_bytes"] > 0
    again = trained(lora)[2]
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), f"the same seed gave a different {name}"
    other = trained(lora, seed=1)[2]
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


def test_lora_trains_only_the_adapters_and_the_head():
    encoder, _, model, _, _ = trained(lora=True)
    before = dict(encoder.named_parameters())
    for name, p in model.encoder.named_parameters():
        if "lora_" not in name:
            base = name.replace("base.", "")
            assert torch.equal(p, before[base]), f"{name} moved, but LoRA freezes the encoder's own weights"


def test_finetune_and_accuracy_refuse_bad_input():
    _, _, model, _, (X, M, Y) = trained(lora=False)
    with pytest.raises(ValueError, match="same number"):
        accuracy(model, X, M, Y[:3])
    with pytest.raises((ValueError, TypeError), match="lr"):
        finetune(model, X, M, Y, 0.0, 5, 4, 8, 0)


def test_the_seeds_script_runs_end_to_end_and_refuses_bad_arguments():
    script = str(ROOT / "scripts" / "lora_seeds.py")
    bad = subprocess.run([sys.executable, script, "--seeds", "0"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--seeds must be at least 1" in bad.stderr
    if minilm_folder()[0] is None:
        pytest.skip(minilm_folder()[1])
    tiny = [
        "--seeds",
        "2",
        "--ranks",
        "1",
        "--factors",
        "1",
        "2",
        "--steps",
        "2",
        "--train",
        "3",
        "--val",
        "2",
        "--test",
        "2",
    ]
    run = subprocess.run([sys.executable, script, *tiny], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    assert "validation accuracy by rate (seed 0)" in out and "LoRA r=1: 0.002" in out, out
    for method in ("full fine-tuning", "LoRA r=1", "frozen + head"):
        assert f"{method}:" in out.split("test accuracy")[1], f"{method} missing from the table:\n{out}"
    assert out.count("seed 1, ") == 2, "seed 1 should run each method once, at its chosen rate"


def test_notebook_07_trains_with_the_rates_the_seeds_run_chose():
    """07's parameters cell says its rates were chosen on validation by `make lora-seeds`: they must be its winners."""
    import ast
    import re

    from course_utils.tools import results

    chosen = results.row("07", "lora-seed-study")["values"]
    source = (ROOT / "notebooks" / "07_lora_qlora.py").read_text(encoding="utf-8")
    full = float(re.search(r"^LR_FULL, LR_PROBE = ([\d.e-]+),", source, re.M).group(1))
    lora = ast.literal_eval(re.search(r"^LR_LORA = (\{[^}]*\})", source, re.M).group(1))
    assert full == chosen["full_fine_tuning_lr"], (
        f"LR_FULL {full:g}, but make lora-seeds chose {chosen['full_fine_tuning_lr']:g}"
    )
    for r, lr in lora.items():
        assert lr == chosen[f"lora_r_{r}_lr"], (
            f"LR_LORA[{r}] = {lr:g}, but make lora-seeds chose {chosen[f'lora_r_{r}_lr']:g}"
        )
