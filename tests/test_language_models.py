"""course_utils.language_models and scripts/train_gpt.py (notebook 05's reference GPT): held-out bits per character
are counted right, and a tiny run writes a checkpoint that loads and re-scores to the figure it recorded."""

import json
import math
import sys

import torch

from course_utils import language_models
from course_utils.gpt import GPT, GPTConfig
from course_utils.paths import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import train_gpt  # noqa: E402


class Uniform(torch.nn.Module):
    """Logits of zero: every token costs exactly log V nats, whatever its context."""

    def __init__(self, vocab_size, max_len):
        super().__init__()
        self.config = type("Config", (), {"max_len": max_len})()
        self.vocab_size = vocab_size

    def forward(self, x):
        return (torch.zeros(*x.shape, self.vocab_size),)


def test_every_held_out_token_is_scored_exactly_once():
    for n, T in [(5, 8), (9, 8), (50, 8), (53, 8), (64, 16), (65, 16)]:  # shorter than a window, exact, a tail
        ids = torch.randint(7, (n,))
        got = language_models.bits_per_char(Uniform(7, T), ids, n_chars=10, device="cpu")
        assert math.isclose(got, (n - 1) * math.log2(7) / 10, rel_tol=1e-6), (n, T)


def test_bits_per_char_equals_full_context_cross_entropy_within_one_window():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, max_len=16, n_layers=1, n_heads=2, d_model=8)).eval()
    ids = torch.randint(11, (17,))
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(ids[None, :-1])[0][0], ids[1:], reduction="sum")
    assert math.isclose(
        language_models.bits_per_char(model, ids, 40, "cpu"), float(loss) / math.log(2) / 40, rel_tol=1e-5
    )


def test_a_tiny_run_ships_a_checkpoint_that_rescores_to_its_figure(tmp_path, capsys):
    out = tmp_path / "gpt"
    args = ["--steps", "4", "--eval-every", "2", "--n-layers", "1", "--d-model", "32", "--n-heads", "2"]
    args += ["--max-len", "32", "--batch", "4", "--vocab-size", "300", "--threads", "1", "--out", str(out)]
    args += ["--chars-per-novel", "20000"]
    assert train_gpt.main(args) == 0
    recipe = json.loads((out / "recipe.json").read_text())
    assert [h["step"] for h in recipe["history"]] == [2, 4] and recipe["parameters"] > 0
    assert (out / "model.pt").stat().st_size < 20 * 2**20
    model, tokenizer, notes = language_models.load_gpt(out)
    assert notes["scores"] == recipe["scores"] and len(tokenizer) == model.config.vocab_size
    capsys.readouterr()
    assert train_gpt.main(["--eval-only", "--chars-per-novel", "20000", "--out", str(out)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["now"] == shown["recorded"] == recipe["scores"]
