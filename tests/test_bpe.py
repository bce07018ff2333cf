"""course_utils.bpe and course_utils.bytelevel: the lecture's example exactly, the fast trainer equal to the
slow one, byte-level round trips on arbitrary Unicode, and agreement with Hugging Face `tokenizers`.
The shared merge engine (course_utils.bpe_base) has its own tests in test_bpe_base.py."""

from __future__ import annotations

import collections
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_utils.bpe import (
    apply_merges,
    bpe_trace,
    bpe_vocabulary,
    count_pairs,
    train_bpe,
    train_bpe_fast,
    word_to_symbols,
)
from course_utils.bpe_base import merge_pair
from course_utils.bytelevel import GPT2_SPLIT_PATTERN, ByteLevelBPE, bytes_to_unicode, pre_split
from course_utils.data import load_austen, load_translation_pairs

SEED_WORDS = {"low": 5, "lower": 2, "newest": 6, "widest": 3}
SEED_MERGES = [
    ("e", "s"),
    ("es", "t"),
    ("est", "</w>"),
    ("l", "o"),
    ("lo", "w"),
    ("n", "e"),
    ("ne", "w"),
    ("new", "est</w>"),
    ("low", "</w>"),
    ("w", "i"),
]
# the lecture's final vocabulary: l o w </w> e r n s t i d, then the ten merged symbols
SEED_VOCAB = "l o w </w> e r n s t i d es est est</w> lo low ne new newest</w> low</w> wi".split()
ABWASSER_MERGES = [
    tuple(m.split())
    for m in (
        "A b|a s|e r|s er|w as|Ab was|Abwas ser|B e|a n|d l|h an|n g|u ng|Be han|dl ung|Behan dlung|A n|a g|l ag"
    ).split("|")
]


@pytest.fixture(scope="module")
def austen():
    return "".join(load_austen().values())


@pytest.fixture(scope="module")
def small_tok(austen):
    """A 600-id tokenizer trained on 200k characters of Austen, with two special tokens."""
    return ByteLevelBPE(special_tokens=["<|endoftext|>", "<pad>"]).train(austen[:200_000], 600)


def austen_word_counts(text: str) -> dict[str, int]:
    return dict(collections.Counter(re.findall(r"[A-Za-z]+", text)))


# ----------------------------------------------------------------------------- word level, the lecture
def test_seed_example_merges_and_vocabulary():
    merges = train_bpe(SEED_WORDS, 10)
    assert merges == SEED_MERGES
    assert bpe_vocabulary(SEED_WORDS, merges) == SEED_VOCAB
    assert len(SEED_VOCAB) == 11 + 10  # "initial vocabulary + number of merges"


def test_seed_example_trace():
    steps = bpe_trace(SEED_WORDS, 10)
    assert len(steps) == 11 and [s["merge"] for s in steps[:-1]] == SEED_MERGES and steps[-1]["merge"] is None
    first = steps[0]["pairs"]
    assert first[("e", "s")] == first[("s", "t")] == first[("t", "</w>")] == 9 and first[("l", "o")] == 7
    assert steps[-1]["vocab"] == SEED_VOCAB
    assert steps[-1]["corpus"] == {
        ("low</w>",): 5,
        ("low", "e", "r", "</w>"): 2,
        ("newest</w>",): 6,
        ("wi", "d", "est</w>"): 3,
    }


def test_abwasser_becomes_ten_subtokens():
    tokens = apply_merges("Abwasserbehandlungsanlage", ABWASSER_MERGES)
    assert tokens == ["Abwasser", "b", "e", "han", "dlung", "s", "an", "lag", "e", "</w>"]
    # the capitalised compound parts merge further: "B e" is case-sensitive
    assert apply_merges("Behandlung", ABWASSER_MERGES) == ["Behandlung", "</w>"]
    assert "".join(tokens).removesuffix("</w>") == "Abwasserbehandlungsanlage"


def test_small_steps():
    assert word_to_symbols("ab") == ["a", "b", "</w>"] and word_to_symbols("ab", "") == ["a", "b"]
    assert count_pairs({("a", "a", "a"): 2}) == {("a", "a"): 4}  # overlapping pairs both count
    assert list(count_pairs({("b", "a"): 1, ("a", "b"): 1})) == [("b", "a"), ("a", "b")]  # first-occurrence order
    assert apply_merges("aaa", [("a", "a")], end_of_word="") == ["aa", "a"]


def test_train_stops_when_pairs_run_out():
    assert train_bpe({"ab": 3}, 10) == [("a", "b"), ("ab", "</w>")]
    assert train_bpe_fast({"ab": 3}, 10) == [("a", "b"), ("ab", "</w>")]


def test_fast_trainer_equals_recounting_trainer(austen):
    counts = austen_word_counts(austen[:60_000])
    slow = train_bpe(counts, 150)
    assert train_bpe_fast(counts, 150) == slow
    assert len(set(slow)) == 150


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.text("abc", min_size=1, max_size=7), st.integers(1, 5), min_size=1, max_size=8),
    st.integers(0, 12),
)
def test_fast_equals_slow_on_random_corpora(word_counts, n):
    """Small alphabets force overlaps ("aaa") and many ties: the hardest case for incremental counts."""
    assert train_bpe_fast(word_counts, n) == train_bpe(word_counts, n)


@settings(max_examples=60, deadline=None)
@given(st.text("abcd", min_size=1, max_size=12))
def test_apply_merges_equals_priority_merging(word):
    """For a learned merge list, 'each merge in order' equals GPT-2's 'earliest-learned pair first'."""
    merges = train_bpe({"abcabd": 4, "dabca": 3, "aaab": 2, "cdcd": 2}, 12)
    ranks = {p: r for r, p in enumerate(merges)}
    symbols = word_to_symbols(word)
    while len(symbols) > 1:
        pair = min(zip(symbols, symbols[1:]), key=lambda p: ranks.get(p, len(ranks)))
        if pair not in ranks:
            break
        symbols = merge_pair(symbols, pair)
    assert apply_merges(word, merges) == symbols


def test_word_level_validation():
    with pytest.raises(TypeError, match="word_counts"):
        train_bpe([("low", 5)], 3)
    with pytest.raises(ValueError, match=r"word_counts\['low'\] must be an int >= 1"):
        train_bpe({"low": 0}, 3)
    with pytest.raises(ValueError, match="num_merges"):
        train_bpe(SEED_WORDS, -1)
    with pytest.raises(TypeError, match="num_merges"):
        train_bpe_fast(SEED_WORDS, 2.5)
    with pytest.raises(ValueError, match=r"merges\[0\]"):
        apply_merges("low", [("l", "o", "w")])
    with pytest.raises(TypeError, match="word"):
        apply_merges(["l", "o"], SEED_MERGES)


# ----------------------------------------------------------------------------- byte level
def test_bytes_to_unicode_is_gpt2s():
    m = bytes_to_unicode()
    assert len(set(m.values())) == 256 and m[32] == "Ġ" and m[10] == "Ċ" and m[ord("A")] == "A"
    from tokenizers import pre_tokenizers

    assert set(m.values()) == set(pre_tokenizers.ByteLevel.alphabet())


def test_incremental_equals_naive_byte_level(austen):
    text = austen[500_000:530_000] + " ".join(de for de, _ in load_translation_pairs("train")[:300])
    fast = ByteLevelBPE().train(text, 256 + 300)
    slow = ByteLevelBPE().train(text, 256 + 300, naive=True)
    assert fast.merges == slow.merges and len(fast.merges) == 300


def test_warm_cache_from_training_equals_cold_encoding(austen):
    text = austen[:100_000] + "<s>" + austen[200_000:220_000]
    trained = ByteLevelBPE(special_tokens=["<s>"]).train(text, 700)
    assert len(trained._cache) > 1000  # filled by training
    cold = trained.truncated(len(trained))
    assert len(cold._cache) == 0 and cold.encode(text) == trained.encode(text)
    assert all(trained._cache[k] == v for k, v in cold._cache.items())


def test_pre_split_examples():
    assert pre_split("Hello world's 42 cats!!  ") == ["Hello", " world", "'s", " 42", " cats", "!!", "  "]
    assert pre_split("a\n\nb") == ["a", "\n", "\n", "b"]
    ascii_text = "It's 1811: Mr. Dashwood's estate, \"Norland\" -- large.\n\n  CHAPTER 2_b"
    assert pre_split(ascii_text, use_regex=False) == pre_split(ascii_text)  # the approximation is exact on ASCII


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_pre_split_covers_the_text(s):
    assert "".join(pre_split(s)) == s
    assert "".join(pre_split(s, use_regex=False)) == s


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_round_trip_arbitrary_unicode(small_tok, s):
    ids = small_tok.encode(s)
    assert all(0 <= i < len(small_tok) for i in ids)
    assert small_tok.decode(ids) == s
    assert small_tok.decode(small_tok.encode(s, allowed_special="none")) == s


@pytest.fixture(scope="module")
def re_tok(austen):
    return ByteLevelBPE(use_regex=False).train(austen[:50_000], 400)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_round_trip_with_the_re_fallback(re_tok, s):
    assert re_tok.decode(re_tok.encode(s)) == s


def test_round_trip_unseen_text(small_tok):
    german = "\n".join(de for de, _ in load_translation_pairs("test")[:300])
    for text in (german, "Ærøskøbing ☃ 東京 naïve café — “quotes” \t\r\n 🤖🤖", "Abwasserbehandlungsanlage"):
        assert small_tok.decode(small_tok.encode(text)) == text


def test_special_tokens(small_tok):
    eot, pad = small_tok.special_tokens["<|endoftext|>"], small_tok.special_tokens["<pad>"]
    assert (eot, pad) == (600 - 2, 600 - 1) and len(small_tok) == 600
    ids = small_tok.encode("Emma.<|endoftext|><pad>")
    assert ids[-2:] == [eot, pad] and small_tok.decode(ids) == "Emma.<|endoftext|><pad>"
    plain = small_tok.encode("<pad>", allowed_special="none")
    assert pad not in plain and len(plain) > 1
    assert small_tok.token_to_id("<pad>") == pad


def test_encode_matches_tokenizers_with_our_merges(small_tok, austen):
    """Our encoder and Hugging Face's BPE model, given the same merges, produce the same ids."""
    hf = small_tok.to_tokenizers()
    held_out = austen[-50_000:] + "\n".join(de for de, _ in load_translation_pairs("valid")[:300])
    for text in (held_out, "Ærøskøbing naïve café — “quotes” 12345 x²", "<|endoftext|> and <pad>"):
        assert hf.encode(text).ids == small_tok.encode(text)


def test_training_matches_tokenizers(austen):
    """Same text, same pre-split, same tie rule: the same merges as `tokenizers`' BpeTrainer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    text = austen[:300_000]
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.train_from_iterator(
        [text],
        trainers.BpeTrainer(vocab_size=1256, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    theirs = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in json.loads(hf.to_str())["model"]["merges"]
    ]
    ours = ByteLevelBPE().train(text, 1256).merges_as_strings()
    assert ours[:200] == theirs[:200]
    assert len(set(ours) & set(theirs)) / len(theirs) >= 0.98


def test_save_load(small_tok, tmp_path):
    json_path, vocab_path = small_tok.save(tmp_path / "tok")
    assert json_path.name == "tok.json" and vocab_path.name == "tok.vocab"
    loaded = ByteLevelBPE.load(tmp_path / "tok")
    text = "It is a truth universally acknowledged <|endoftext|>"
    assert loaded.encode(text) == small_tok.encode(text) and loaded.special_tokens == small_tok.special_tokens
    lines = vocab_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + len(small_tok) and lines[257].startswith("256\t[")
    assert "<- [" in lines[257] and lines[-1] == "599\t[<pad>]\t(special)"
    dotted, _ = small_tok.save(tmp_path / "sub" / "tok_v1.5")  # a dot in the name is not a suffix to replace
    assert (
        dotted.name == "tok_v1.5.json" and ByteLevelBPE.load(tmp_path / "sub" / "tok_v1.5").merges == small_tok.merges
    )
    assert ByteLevelBPE.load(dotted).merges == small_tok.merges
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="format"):
        ByteLevelBPE.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        ByteLevelBPE.load(tmp_path / "missing")


def test_truncated_equals_training_fewer_merges(austen, small_tok):
    short = ByteLevelBPE(special_tokens=["<|endoftext|>", "<pad>"]).train(austen[:200_000], 400)
    cut = small_tok.truncated(400)
    assert cut.merges == short.merges and cut.special_tokens == short.special_tokens == {
        "<|endoftext|>": 398,
        "<pad>": 399,
    }
    assert cut.encode("Elinor<pad>") == short.encode("Elinor<pad>")
    with pytest.raises(ValueError, match="vocab_size"):
        small_tok.truncated(601)


def test_byte_level_validation(small_tok):
    with pytest.raises(ValueError, match="vocab_size must be >= 257"):
        ByteLevelBPE(special_tokens=["<s>"]).train("abc", 256)
    with pytest.raises(TypeError, match="text"):
        ByteLevelBPE().train(b"abc", 300)
    with pytest.raises(TypeError, match="text"):
        small_tok.encode(42)
    with pytest.raises(ValueError, match="allowed_special"):
        small_tok.encode("a", allowed_special="some")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        small_tok.decode([10_000])
    with pytest.raises(ValueError, match="duplicates"):
        ByteLevelBPE(special_tokens=["<s>", "<s>"])
    with pytest.warns(UserWarning, match="ran out of pairs"):
        ByteLevelBPE().train("ab ab", 300)


def test_pattern_is_gpt2s():
    assert GPT2_SPLIT_PATTERN.startswith("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+")


def test_docstring_examples():
    import doctest

    import course_utils.bpe
    import course_utils.bpe_base
    import course_utils.bytelevel

    for module in (course_utils.bpe, course_utils.bpe_base, course_utils.bytelevel):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__
