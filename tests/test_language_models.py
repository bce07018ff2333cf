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
    args += ["--chars-per-novel", "20000", "--bf16"]
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


# ---------------------------------------------------------------------------------------------
# n-grams over BPE tokens, per character, against a slow textbook Kneser-Ney
# ---------------------------------------------------------------------------------------------
class TextbookKN:
    """Interpolated Kneser-Ney as a textbook writes it: one dict per order, one recursive call per token.

    P_top(w | h) = max(c(h w) - D, 0) / c(h) + D N1+(h .) / c(h) P_low(w | h'),
    lower orders the same with continuation counts N1+(. h w) in place of c(h w),
    P(w | empty history, below the unigram) = 1 / V, V = the training types + one unknown slot;
    a history never seen passes the lower order through.
    """

    def __init__(self, tokens, n, D=0.75):
        self.n, self.D, self.V = n, D, len(set(tokens)) + 1
        grams = {m: [tuple(tokens[i : i + m]) for i in range(len(tokens) - m + 1)] for m in range(1, n + 1)}
        self.count = {m: {} for m in range(1, n + 1)}  # m -> {history: {w: count}}
        self.cont = {m: {} for m in range(1, n)}  # m -> {history: {w: number of distinct left neighbours}}
        for m, gs in grams.items():
            for g in gs:
                d = self.count[m].setdefault(g[:-1], {})
                d[g[-1]] = d.get(g[-1], 0) + 1
        for m in range(1, n):
            for g in set(grams[m + 1]):
                d = self.cont[m].setdefault(g[1:-1], {})
                d[g[-1]] = d.get(g[-1], 0) + 1

    def p(self, history, w, top=True):
        history = tuple(history)
        lower = 1 / self.V if not history else self.p(history[1:], w, top=False)
        followers = (self.count if top else self.cont)[len(history) + 1].get(history, {})
        total = sum(followers.values())
        if total == 0:
            return lower
        return max(followers.get(w, 0) - self.D, 0) / total + self.D * len(followers) / total * lower

    def bits(self, tokens, order):
        return -sum(math.log2(self.p(tokens[max(0, i - order + 1) : i], t)) for i, t in enumerate(tokens))


TRAIN = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
    "want of a wife. However little known the feelings or views of such a man may be on his first entering "
    "a neighbourhood, this truth is so well fixed in the minds of the surrounding families, that he is "
    "considered the rightful property of some one or other of their daughters."
)
HELD = "It is a truth that a single man in want of a good wife is considered the property of their daughters."


def test_bpe_token_ngram_bits_per_char_equal_a_textbook_kneser_ney():
    from course_utils.bytelevel import ByteLevelBPE
    from course_utils.ngram import NGramLM

    bpe = ByteLevelBPE().train(TRAIN, vocab_size=300)
    train, held = bpe.encode(TRAIN), bpe.encode(HELD + " zebra!")  # " zebra" has tokens never seen
    assert len(held) < len(HELD) and set(held) - set(train)
    lm = NGramLM(4).fit(train)
    for order in range(1, 5):
        ref = TextbookKN(train, order)
        got = language_models.ngram_bits_per_char(lm, held, len(HELD) + 7, order)
        assert math.isclose(got, ref.bits(held, order) / (len(HELD) + 7), rel_tol=1e-9), order


def test_character_ngram_bits_per_char_is_bits_per_token():
    from course_utils.ngram import NGramLM

    lm = NGramLM(3).fit(TRAIN)
    assert math.isclose(language_models.ngram_bits_per_char(lm, HELD, len(HELD)), lm.bits_per_token(HELD))


def test_ngram_bits_per_char_errors():
    import pytest

    with pytest.raises(TypeError, match="fitted NGramLM"):
        language_models.ngram_bits_per_char("not a model", [1, 2], 2)


# ---------------------------------------------------------------------------------------------
# total_nats, a transformers model, train_steps
# ---------------------------------------------------------------------------------------------
def test_total_nats_is_bits_per_char_times_chars_and_a_transformers_model_scores_the_same():
    from course_utils.gpt import to_hf_gpt2

    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=13, max_len=16, n_layers=1, n_heads=2, d_model=8)).eval()
    ids = torch.randint(13, (70,))
    nats = language_models.total_nats(model, ids, "cpu")
    assert math.isclose(language_models.bits_per_char(model, ids, 100, "cpu"), nats / math.log(2) / 100)

    def tokenizer(text, add_special_tokens=False):  # a character tokenizer with transformers' interface
        return {"input_ids": [int(c, 36) for c in text]}

    text = "".join("0123456789abc"[i] for i in ids.tolist())
    hf = to_hf_gpt2(model)
    got = language_models.hf_bits_per_char(hf, tokenizer, text, "cpu", max_len=16)
    assert math.isclose(got, nats / math.log(2) / len(text), rel_tol=1e-5)


def test_train_steps_is_a_step_budget_with_a_falling_learning_curve():
    ids = torch.tensor([i % 7 for i in range(2000)])  # 0 1 2 ... 6 0 1 ...: learnable

    def run():
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=7, max_len=16, n_layers=1, n_heads=2, d_model=16))
        score = lambda m: language_models.bits_per_char(m, ids[:200], 200, "cpu")  # noqa: E731
        return language_models.train_steps(
            model, ids, 30, batch=8, lr=3e-3, device="cpu", eval_fn=score, eval_every=10, warmup=5, progress=False
        )

    curve = run()
    assert curve["steps"] == [10, 20, 30] and curve["seconds"] > 0 and curve["tokens"] == 30 * 8 * 16
    assert curve["bits"][-1] < curve["bits"][0] < math.log2(7) + 0.5
    assert run()["bits"] == curve["bits"]  # same seed, same model: steps, not seconds


def test_smollm_scores_austen_or_says_how_to_get_it():
    import pytest

    folder, why = language_models.smollm_files()
    if folder is None:
        assert "make models" in why
        with pytest.raises(ModuleNotFoundError, match="make models"):
            language_models.load_smollm()
        pytest.skip(why)
    model, tokenizer = language_models.load_smollm()
    text = "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be"
    bpc = language_models.hf_bits_per_char(model, tokenizer, text * 3, "cpu", max_len=64)
    assert 0.05 < bpc < 2.5, bpc  # a real LLM knows this sentence (and the repeats cost almost nothing)
