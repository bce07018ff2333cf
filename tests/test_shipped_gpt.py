"""The reference GPT shipped in models/gpt/ (notebook 05, the race): the file is what its recipe says, small,
loadable, re-scores on the held-out Austen text to the figure it records, and beats every n-gram on that text."""

import json

import pytest
import torch

from course_utils.data import split_austen
from course_utils.language_models import bits_per_char, held_out_texts, load_gpt, ngram_bits_per_char
from course_utils.ngram import NGramLM
from course_utils.paths import MODELS_DIR

MODELS = MODELS_DIR / "gpt"
CONFIG_KEYS = ("vocab_size", "max_len", "n_layers", "n_heads", "d_model", "dropout")


@pytest.fixture(scope="module")
def shipped():
    path = MODELS / "model.pt"
    assert path.exists(), f"{path} is missing: restore it with `git checkout -- models/gpt`"
    model, tok, notes = load_gpt(MODELS)
    train, held = split_austen()
    return dict(
        path=path,
        model=model,
        tok=tok,
        notes=notes,
        recipe=json.loads((MODELS / "recipe.json").read_text()),
        train="".join(train.values()),
        held=held_out_texts(held)["notebook"],
    )


def test_checkpoint_is_small_fp16_and_matches_its_tokenizer(shipped):
    assert shipped["path"].stat().st_size <= 20 * 2**20, "the shipped checkpoint must stay under 20 MB"
    raw = torch.load(shipped["path"], map_location="cpu", weights_only=True)
    assert all(v.dtype == torch.float16 for v in raw["state_dict"].values() if v.is_floating_point())
    assert len(shipped["tok"]) == shipped["model"].config.vocab_size
    assert sum(p.numel() for p in shipped["model"].parameters()) == shipped["recipe"]["parameters"]


def test_recipe_is_recorded_once_and_is_the_weights_configuration(shipped):
    """recipe.json and model.pt's notes hold the same recipe, scores and history; the sizes are the config's."""
    recipe, notes = shipped["recipe"], shipped["notes"]
    assert notes["scores"] == recipe["scores"] and notes["history"] == recipe["history"]
    assert notes["recipe"] == {k: recipe[k] for k in notes["recipe"]}
    config = shipped["model"].config
    assert all(getattr(config, k) == recipe[k] for k in CONFIG_KEYS), "recipe.json and the weights disagree"
    assert [h["step"] for h in recipe["history"]][-1] == recipe["steps"], "the history must reach the last step"


def test_it_rescores_to_its_recorded_figure_and_beats_every_ngram_by_a_fifth_of_a_bit(shipped):
    """The notebook's 120k held-out characters: the GPT's bits per character are the recorded ones, at most 1.50,
    and at least 0.2 below the best Kneser-Ney model on characters (n <= 7) and on the GPT's own BPE tokens (n <= 5),
    fitted here on the same training text."""
    tok, held = shipped["tok"], shipped["held"]
    held_ids = tok.encode(held)
    gpt = bits_per_char(shipped["model"], torch.tensor(held_ids), len(held), "cpu")
    assert round(gpt, 4) == pytest.approx(shipped["recipe"]["scores"]["notebook"], abs=2e-4)
    chars = NGramLM(7, "kneser-ney").fit(shipped["train"])
    tokens = NGramLM(5, "kneser-ney").fit(tok.encode(shipped["train"]))
    ngrams = [chars.bits_per_token(held, order=n) for n in range(1, 8)]
    ngrams += [ngram_bits_per_char(tokens, held_ids, len(held), order=n) for n in range(1, 6)]
    assert gpt <= 1.50, f"the shipped GPT scores {gpt:.3f} bits/char; the course's target is <= 1.50"
    assert gpt <= min(ngrams) - 0.2, f"GPT {gpt:.3f} vs best n-gram {min(ngrams):.3f}: less than 0.2 below it"
