"""course_utils.ngram against a slow, independently written dict-and-recursion reference,
against the formulas, and its properties (probabilities sum to one, order-m scoring is exact).
"""

import doctest
import math
from collections import Counter

import course_utils  # noqa: F401
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import course_utils.ngram as ngram
from course_utils.ngram import NGramLM, ngram_counts, ngrams, unseen_share

TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife. However little known the feelings or views of such a man may be "
    "on his first entering a neighbourhood, this truth is so well fixed in the minds of the "
    "surrounding families, that he is considered the rightful property of some one or other of "
    "their daughters."
)


def test_doctests():
    result = doctest.testmod(ngram, raise_on_error=False)
    assert result.attempted >= 6 and result.failed == 0


class ReferenceKN:
    """Interpolated Kneser-Ney written the textbook way: nested dicts and recursion, one call per token."""

    def __init__(self, tokens, n, D=0.75):
        self.n, self.D = n, D
        self.V = len(set(tokens)) + 1
        self.raw = {m: Counter(tuple(tokens[i : i + m]) for i in range(len(tokens) - m + 1)) for m in range(1, n + 1)}
        self.cont = {m: Counter(g[1:] for g in self.raw[m + 1]) for m in range(1, n)}

    def _stats(self, table, h):
        followers = {g[-1]: c for g, c in table.items() if g[:-1] == h}
        return followers, sum(followers.values())

    def p(self, h, w, top=True):
        lower = 1.0 / self.V if not h else self.p(h[1:], w, top=False)
        m = len(h) + 1
        table = self.raw[m] if top else self.cont[m]
        followers, total = self._stats(table, h)
        if total == 0:
            return lower
        return max(followers.get(w, 0) - self.D, 0) / total + self.D * len(followers) / total * lower


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_kneser_ney_matches_the_reference(n):
    lm = NGramLM(n).fit(TEXT)
    ref = ReferenceKN(TEXT, n)
    for context in ["", "a", "th", "the", "in ", "zzz", "man"]:
        for w in "ae tz,":
            h = tuple(context[max(0, len(context) - (n - 1)) :]) if n > 1 else ()
            assert lm.prob(context, w) == pytest.approx(ref.p(h, w), rel=1e-12), (context, w)


def test_add_k_is_the_formula():
    lm = NGramLM(2, "add-k", k=0.5).fit(TEXT)
    V = len(set(TEXT)) + 1
    c_th = TEXT.count("th")
    c_t = sum(1 for i in range(len(TEXT) - 1) if TEXT[i] == "t")  # "t" as a context (not the last char)
    assert lm.prob("t", "h") == pytest.approx((c_th + 0.5) / (c_t + 0.5 * V))
    assert lm.prob("q", "x") == pytest.approx(0.5 / (TEXT[:-1].count("q") + 0.5 * V))


@settings(max_examples=40, deadline=None)
@given(
    text=st.text(alphabet="abcd ", min_size=5, max_size=60),
    n=st.integers(1, 4),
    context=st.text(alphabet="abcdz ", max_size=5),
    smoothing=st.sampled_from(["kneser-ney", "add-k"]),
)
def test_probabilities_sum_to_one(text, n, context, smoothing):
    lm = NGramLM(n, smoothing).fit(text)
    total = lm.probs(context).sum() + lm.prob(context, "<never seen>")
    assert total == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("smoothing", ["kneser-ney", "add-k"])
def test_bits_per_token_is_the_mean_of_token_probabilities(smoothing):
    lm = NGramLM(4, smoothing).fit(TEXT[:250])
    held = TEXT[250:]
    for order in (1, 2, 4):
        slow = -np.mean([math.log2(lm.prob(held[:i], w, order)) for i, w in enumerate(held)])
        assert lm.bits_per_token(held, order) == pytest.approx(slow, rel=1e-12)


def test_order_m_scoring_equals_an_order_m_model():
    big, small = NGramLM(5).fit(TEXT[:300]), NGramLM(3).fit(TEXT[:300])
    assert big.bits_per_token(TEXT[300:], order=3) == pytest.approx(small.bits_per_token(TEXT[300:]), rel=1e-12)


def test_words_work_and_unseen_share():
    words = TEXT.split()
    assert ngrams(["Early", "one", "morning", "the"], 3) == [("Early", "one", "morning"), ("one", "morning", "the")]
    assert ngram_counts("aaa", 2) == Counter({("a", "a"): 2})
    assert unseen_share(words, words, 2) == 0.0
    assert unseen_share("a b c".split(), "x y z".split(), 1) == 1.0
    lm = NGramLM(2).fit(words)
    assert lm.prob(["a"], "single") > lm.prob(["a"], "wife")
    assert 0 < lm.prob(["a"], "unicorn") < lm.prob(["a"], "man")  # never seen: smaller, but not zero


def test_sparsity_grows_with_n():
    words = TEXT.split()
    shares = [unseen_share(words[:40], words[40:], n) for n in (1, 2, 3)]
    assert shares == sorted(shares) and shares[-1] > 0.9


def test_generate_is_reproducible_and_in_vocabulary():
    lm = NGramLM(3).fit(TEXT)
    a = lm.generate("th", 30, seed=1)
    assert a == lm.generate("th", 30, seed=1) and len(a) == 30 and set(a) <= set(TEXT)
    cold = lm.generate("th", 30, seed=1, temperature=0.01)  # nearly greedy: repeats itself
    assert len(set(cold)) < len(set(a)) or cold == lm.generate("th", 30, seed=2, temperature=0.01)


@pytest.mark.parametrize(
    "call,err,words",
    [
        (lambda: NGramLM(0), ValueError, "n must be an int >= 1"),
        (lambda: NGramLM(2.5), TypeError, "n must be an int"),
        (lambda: NGramLM(2, "laplace"), ValueError, "smoothing must be one of"),
        (lambda: NGramLM(2, discount=1.5), ValueError, "discount"),
        (lambda: NGramLM(2).prob("a", "b"), ValueError, "call fit"),
        (lambda: NGramLM(2).fit("abc").bits_per_token("abc", order=3), ValueError, "order must be <= n=2"),
        (lambda: NGramLM(3).fit("ab"), ValueError, "at least n=3"),
        (lambda: ngrams(5, 2), TypeError, "tokens must be"),
        (lambda: unseen_share("abc", "a", 2), ValueError, "fewer than n=2"),
    ],
)
def test_clear_errors(call, err, words):
    with pytest.raises(err, match=words):
        call()


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_model_unseen_share_equals_the_counting_one(n):
    lm = NGramLM(5).fit(TEXT[:300])
    assert lm.unseen_share(TEXT[300:], order=n) == pytest.approx(unseen_share(TEXT[:300], TEXT[300:], n))
    words = TEXT.split()
    wl = NGramLM(3).fit(words[:40])
    assert wl.unseen_share(words[40:], order=min(n, 3)) == pytest.approx(
        unseen_share(words[:40], words[40:], min(n, 3))
    )
