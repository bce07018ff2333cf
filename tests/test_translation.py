"""course_utils.translation: batching, the curriculum, the recipe, checkpoints, BLEU and test.tsv, and
scripts/train_translator.py end to end."""

import importlib.util
import json
import time
from itertools import islice

import course_utils  # noqa: F401
import pytest
import sacrebleu
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.bytelevel import ByteLevelBPE
from course_utils.paths import ROOT
from course_utils.train import load_checkpoint
from course_utils.transformer import Seq2SeqTransformer, TransformerConfig
from course_utils.translation import (
    RECIPE_KEYS,
    batch_by_length,
    bleu,
    bleu_details,
    chrf,
    config_ids,
    curriculum_batches,
    load_translator,
    make_batch,
    make_translator,
    pad_batch,
    read_test_tsv,
    save_translator,
    sentence_scores,
    shared_tokenizer,
    shorter_half,
    translator_config,
    write_test_tsv,
)

torch.set_num_threads(1)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=60),
    max_tokens=st.integers(30, 200),
    seed=st.integers(0, 100),
)
def test_batch_by_length_properties(lengths, max_tokens, seed):
    batches = batch_by_length(lengths, max_tokens, shuffle=True, seed=seed)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(lengths))), "every example exactly once"
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= max_tokens
    assert batch_by_length(lengths, max_tokens, seed=seed) == batches, "same seed, same batches"


def test_batch_helpers():
    assert pad_batch([[1], [2, 3]], 0).tolist() == [[1, 0], [2, 3]]
    config = TransformerConfig(vocab_size=20, pad_id=0, bos_id=1, eos_id=2)
    src, tgt_in, tgt_out = make_batch([([5, 6], [7]), ([8], [9, 10])], config)
    assert src.tolist() == [[5, 6, 2], [8, 2, 0]]
    assert tgt_in.tolist() == [[1, 7, 0], [1, 9, 10]] and tgt_out.tolist() == [[7, 2, 0], [9, 10, 2]]
    with pytest.raises(ValueError, match="max_tokens"):
        batch_by_length([3, 50], 40)


def test_train_translator_script_end_to_end(tmp_path):
    """scripts/train_translator.py: a few steps of a tiny model, then everything it promises to write."""
    path = ROOT / "scripts" / "train_translator.py"
    spec = importlib.util.spec_from_file_location("train_translator", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "ref"
    results = script.main(
        [
            "--out",
            str(out),
            "--vocab",
            "300",
            "--d-model",
            "16",
            "--n-heads",
            "2",
            "--n-encoder-layers",
            "2",
            "--n-decoder-layers",
            "1",
            "--d-ff",
            "32",
            "--no-norm-first",
            "--max-steps",
            "3",
            "--seconds",
            "60",
            "--beam",
            "2",
            "--limit-eval",
            "6",
            "--max-new-tokens",
            "5",
            "--max-tokens",
            "400",
            "--short-seconds",
            "0.5",
        ]
    )
    for name in ("model.pt", "tokenizer.json", "tokenizer.vocab", "recipe.json", "test.tsv"):
        assert (out / name).exists(), name
    recipe = json.loads((out / "recipe.json").read_text())
    assert (
        recipe["results"]["steps"] == 3
        and recipe["recipe"]["vocab"] == 300
        and recipe["recipe"]["short_seconds"] == 0.5
    )
    assert set(RECIPE_KEYS) <= set(recipe["recipe"]), "recipe.json speaks make_translator's names"
    payload = load_checkpoint(out / "model.pt")
    assert payload["notes"]["recipe"] == recipe["recipe"]
    assert (payload["config"]["n_encoder_layers"], payload["config"]["n_decoder_layers"]) == (2, 1)
    assert payload["config"]["norm_first"] is False is recipe["recipe"]["norm_first"], "--no-norm-first: post-LN"
    assert torch.load(out / "model.pt", weights_only=True)["state_dict"]["embed.weight"].dtype == torch.float16
    model = Seq2SeqTransformer(TransformerConfig(**payload["config"]))
    model.load_state_dict(payload["state_dict"])
    assert len(ByteLevelBPE.load(out / "tokenizer.json")) == 300
    rows = (out / "test.tsv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 7 and results["test_sentences"] == 6
    # re-scoring the saved fp16 file (--eval-only) reproduces the scores: they describe what ships
    again = script.main(["--out", str(out), "--eval-only", "--beam", "2", "--limit-eval", "6", "--max-new-tokens", "5"])
    assert again["test_bleu"] == results["test_bleu"] and again["steps"] == 3
    assert (out / "test.tsv").read_text(encoding="utf-8").splitlines() == rows
    tsv = read_test_tsv(out / "test.tsv")
    assert len(tsv) == 6 and bleu([r[2] for r in tsv], [r[1] for r in tsv]) == pytest.approx(
        results["test_bleu"], abs=0.01
    )
    loaded, tok, notes = load_translator(out)
    assert not loaded.training and len(tok) == 300 and notes["recipe"]["vocab"] == 300
    with pytest.raises(FileNotFoundError, match="train first"):
        script.main(["--out", str(tmp_path / "empty"), "--eval-only"])


def test_curriculum_batches_start_with_the_shorter_half_then_use_all():
    encoded = [([5] * n, [6] * (n % 7 + 1)) for n in range(1, 41)]  # longer sides 1..40, median 21
    short = shorter_half(encoded)
    assert max(max(len(x), len(y)) for x, y in short) == 21 and len(short) == 21
    config = TransformerConfig(
        vocab_size=10,
        pad_id=0,
        bos_id=1,
        eos_id=2,
        d_model=8,
        n_heads=2,
        n_encoder_layers=1,
        n_decoder_layers=1,
        d_ff=16,
        max_len=64,
    )
    first = list(islice(curriculum_batches(encoded, config, 200, short_seconds=3600), 30))
    assert max(src.shape[1] for src, _, _ in first) <= 21 + 1, "the curriculum let a long pair through"
    timed = curriculum_batches(encoded, config, 200, short_seconds=0.05)
    next(timed)  # the clock starts at the first batch
    time.sleep(0.1)
    assert max(src.shape[1] for src, _, _ in islice(timed, 30)) == 40 + 1, "the curriculum did not end on time"
    off = list(islice(curriculum_batches(encoded, config, 200, short_seconds=0), 30))
    assert max(src.shape[1] for src, _, _ in off) == 40 + 1, "short_seconds=0 must use every pair"
    with pytest.raises(ValueError, match="short_seconds must be a number >= 0"):
        next(curriculum_batches(encoded, config, 200, short_seconds=-1))
    with pytest.raises(ValueError, match="no pairs given"):
        shorter_half([])


class _Tok:
    """The three special tokens of a shared_tokenizer at the end of a 40-id vocabulary."""

    special_tokens = {"<pad>": 37, "<s>": 38, "</s>": 39}

    def __len__(self):
        return 40


RECIPE = dict(
    d_model=16,
    n_heads=2,
    n_encoder_layers=1,
    n_decoder_layers=1,
    d_ff=32,
    dropout=0.0,
    norm_first=True,
    warmup=10,
    lr_factor=0.5,
)


def test_translator_config_and_make_translator_follow_the_recipe():
    config = translator_config({**RECIPE, "n_decoder_layers": 2}, _Tok())
    assert (config.vocab_size, config.pad_id, config.bos_id, config.eos_id) == (40, 37, 38, 39)
    sizes = (config.d_model, config.n_heads, config.n_encoder_layers, config.n_decoder_layers, config.d_ff)
    assert sizes == (16, 2, 1, 2, 32) and config.norm_first and config.max_len == 128
    assert config == TransformerConfig(
        **config_ids(_Tok()),
        d_model=16,
        n_heads=2,
        n_encoder_layers=1,
        n_decoder_layers=2,
        d_ff=32,
        dropout=0.0,
        norm_first=True,
        max_len=128,
    )
    model, opt, sched = make_translator(RECIPE, _Tok(), seed=3)
    assert model.config.n_decoder_layers == 1
    assert not translator_config({**RECIPE, "norm_first": False}, _Tok()).norm_first
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults["eps"] == 1e-9
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * 16**-0.5 * 10**-1.5), "warm-up step 1, x lr_factor"
    again, _, _ = make_translator(RECIPE, _Tok(), seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    with pytest.raises(ValueError, match="lacks \\['warmup'\\]"):
        make_translator({k: v for k, v in RECIPE.items() if k != "warmup"}, _Tok())
    assert set(RECIPE) == set(RECIPE_KEYS)


def test_save_and_load_translator_round_trip(tmp_path):
    tok = shared_tokenizer([("Ich bin Student.", "I am a student.")] * 3, 270)
    model, _, _ = make_translator(RECIPE, tok, seed=0)
    save_translator(tmp_path / "t", model, tok, half=False, recipe=RECIPE, results={"test_bleu": 1.0})
    loaded, tok2, notes = load_translator(tmp_path / "t")
    assert loaded.config == model.config and not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert tok2.encode("Ich bin") == tok.encode("Ich bin")
    assert notes == {"recipe": RECIPE, "results": {"test_bleu": 1.0}}


def test_a_checkpoint_with_the_old_recipe_names_loads_with_the_new_ones(tmp_path):
    """Checkpoints in build/ written before the rename (heads, layers, decoder_layers, pre_ln) read in today's names."""
    tok = shared_tokenizer([("Ich bin Student.", "I am a student.")] * 3, 270)
    model, _, _ = make_translator({**RECIPE, "n_decoder_layers": 2}, tok, seed=0)
    old = dict(
        vocab=270,
        d_model=16,
        heads=2,
        layers=1,
        decoder_layers=2,
        d_ff=32,
        dropout=0.0,
        pre_ln=True,
        warmup=10,
        lr_factor=0.5,
    )
    save_translator(tmp_path / "old", model, tok, recipe=old)
    _, _, notes = load_translator(tmp_path / "old")
    assert notes["recipe"] == {"vocab": 270, **RECIPE, "n_decoder_layers": 2}
    assert list(notes["recipe"])[:6] == ["vocab", "d_model", "n_heads", "n_encoder_layers", "n_decoder_layers", "d_ff"]
    assert translator_config(notes["recipe"], tok) == model.config
    save_translator(tmp_path / "both", model, tok, recipe={**old, "decoder_layers": None})  # None: as many as layers
    assert load_translator(tmp_path / "both")[2]["recipe"]["n_decoder_layers"] == 1


def test_bleu_is_sacrebleus_13a_corpus_bleu():
    hyps, refs = ["the cat sat on the mat .", "a dog"], ["the cat sat on a mat .", "the dog barked"]
    assert bleu(hyps, refs) == sacrebleu.corpus_bleu(hyps, [refs], tokenize="13a").score
    assert bleu_details(hyps, refs).score == bleu(hyps, refs) and bleu(refs, refs) == pytest.approx(100)
    with pytest.raises(ValueError, match="same length"):
        bleu(hyps, refs[:1])


def test_test_tsv_round_trips_tabs_quotes_and_backslashes(tmp_path):
    rows = [('Er sagte "ja".', 'He said "yes".', "a\tb"), ("C:\\pfad", "x\ny", "ok")]
    path = write_test_tsv(tmp_path / "test.tsv", *zip(*rows))
    assert path.read_text(encoding="utf-8").splitlines()[0] == "de\treference\ttranslation"
    assert read_test_tsv(path) == rows
    (tmp_path / "bare.tsv").write_text("a\tb\tc\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header"):
        read_test_tsv(tmp_path / "bare.tsv")
    with pytest.raises(ValueError, match="one of each"):
        write_test_tsv(tmp_path / "x.tsv", ["a"], ["b"], [])


def test_chrf_and_sentence_scores_are_sacrebleus():
    hyps, refs = ["the house is big", "a cat"], ["the houses are big", "the cat"]
    assert chrf(hyps, refs) == sacrebleu.corpus_chrf(hyps, [refs]).score
    (b0, c0), (b1, c1) = sentence_scores(hyps, refs)
    assert b0 == sacrebleu.sentence_bleu(hyps[0], [refs[0]]).score
    assert c1 == sacrebleu.sentence_chrf(hyps[1], [refs[1]]).score
    assert c0 > b0  # "house"/"houses": characters give partial credit where words give none
    with pytest.raises(ValueError, match="chrf"):
        chrf("the house", "the house")
