"""N-gram language models: count what followed each context, smooth, score held-out text, sample.

A language model gives the probability of the next token given the ones before it
(lecture notes, CS 585 (Betke): "Early one morning the sun was ..."). An n-gram model cuts the history to
the last n - 1 tokens and reads the probability off counts:

    P(w | h) ~ count(h, w) / count(h),    h = the previous n - 1 tokens.

Its failure is sparsity: most long contexts were never seen, so their counts say
nothing; `unseen_share` measures it on held-out text. Smoothing moves probability
mass to what was never seen. Two kinds live here:

- "add-k" (Laplace for k = 1): add k to every count. Simple, and bad for large n: the
  fake counts swamp the real ones in the many rare contexts.
- "kneser-ney" (interpolated, one discount D per model): subtract D from every seen
  count and give the freed mass to the (n-1)-gram model, recursively down to a uniform
  distribution; lower orders use *continuation* counts (in how many different contexts
  a token appeared), so "Francisco" after "San" does not inflate P("Francisco") alone.

The tokens can be anything hashable: characters (notebook 05 compares a character
n-gram with a character-level GPT, in bits per character) or words (the sparsity picture).

Concessions: counts live in Python dicts, fine for a few million tokens, not for a web
crawl; a token never seen in training gets the uniform share of one extra "unknown"
slot (so every probability is > 0 and cross-entropies are finite); one discount D for
every order instead of the modified Kneser-Ney's three per order.
"""

from __future__ import annotations

from collections import Counter
from typing import Hashable, Sequence

import numpy as np

from course_utils.checks import check_choice, check_int, check_number

__all__ = ["ngrams", "ngram_counts", "unseen_share", "NGramLM", "bits_to_perplexity"]

SMOOTHINGS = ("kneser-ney", "add-k")


def _check_order(fn: str, n, name: str = "n") -> int:
    """An n-gram order: an int >= 1."""
    return check_int(fn, name, n)


def _check_tokens(fn: str, name: str, tokens) -> Sequence:
    if isinstance(tokens, (str, list, tuple)):
        return tokens
    if isinstance(tokens, np.ndarray) and tokens.ndim == 1:
        return tokens.tolist()
    raise TypeError(f"{fn}: {name} must be a str, list or tuple of tokens, got {type(tokens).__name__}")


def ngrams(tokens: Sequence[Hashable], n: int) -> list[tuple]:
    """All n-grams of a sequence, in order, as tuples.

    >>> ngrams("Early one morning".split(), 2)
    [('Early', 'one'), ('one', 'morning')]
    """
    n = _check_order("ngrams", n)
    tokens = _check_tokens("ngrams", "tokens", tokens)
    return list(zip(*(tokens[i:] for i in range(n))))


def ngram_counts(tokens: Sequence[Hashable], n: int) -> Counter:
    """How often each n-gram occurs.

    >>> ngram_counts("abab", 2)
    Counter({('a', 'b'): 2, ('b', 'a'): 1})
    """
    n = _check_order("ngram_counts", n)
    tokens = _check_tokens("ngram_counts", "tokens", tokens)
    return Counter(zip(*(tokens[i:] for i in range(n))))


def unseen_share(train_tokens: Sequence[Hashable], test_tokens: Sequence[Hashable], n: int) -> float:
    """Share of the n-gram occurrences in `test_tokens` that never occur in `train_tokens`.

    This is the sparsity problem in one number: for those n-grams a count-based model has
    no evidence at all and must fall back on smoothing.

    >>> unseen_share("the cat sat".split(), "the cat ran".split(), 2)   # ('cat', 'ran') is new
    0.5
    """
    n = _check_order("unseen_share", n)
    seen = set(ngram_counts(train_tokens, n))
    test = ngrams(test_tokens, n)
    if not test:
        raise ValueError(f"unseen_share: test_tokens has fewer than n={n} tokens")
    return sum(g not in seen for g in test) / len(test)


def _last(context: Sequence[Hashable], m: int) -> list:
    """The last m tokens of context (all of them if it is shorter; none for m = 0)."""
    context = list(context)
    return context[max(0, len(context) - m) :] if m > 0 else []


def bits_to_perplexity(bits_per_token: float) -> float:
    """Perplexity = 2 ** (bits per token): the size of a uniform choice that is as surprising.

    >>> bits_to_perplexity(3.0)
    8.0
    """
    return 2.0**bits_per_token


class NGramLM:
    """An n-gram language model over any hashable tokens, smoothed with Kneser-Ney or add-k.

    >>> lm = NGramLM(3).fit("the cat sat on the mat. the cat ran.")
    >>> lm.prob("th", "e") > lm.prob("th", "a")
    True

    `fit` keeps the counts of every order 1..n, so `bits_per_token(text, order=m)` scores
    exactly the order-m model for any m <= n without refitting.

    Inside, tokens are numbered 0..V-2 (the sorted training vocabulary) and V-1 is the
    unknown slot; an m-gram is one integer, its tokens' digits in base V, so counting is
    `np.unique` and looking up is `np.searchsorted`: seconds for millions of tokens.
    """

    def __init__(self, n: int, smoothing: str = "kneser-ney", *, k: float = 1.0, discount: float = 0.75):
        self.n = _check_order("NGramLM", n)
        check_choice("NGramLM", "smoothing", smoothing, SMOOTHINGS)
        check_number("NGramLM", "k (add-k smoothing)", k, low=0, low_open=True)
        check_number("NGramLM", "discount (Kneser-Ney)", discount, low=0, high=1, low_open=True, high_open=True)
        self.smoothing, self.k, self.D = smoothing, float(k), float(discount)
        self.vocab: list = []
        self._fitted = False

    # ------------------------------------------------------------------ counting
    def encode(self, tokens: Sequence[Hashable]) -> np.ndarray:
        """Token ids (int64); tokens never seen in training get the unknown id V-1."""
        unk = self.V - 1
        return np.fromiter((self._index.get(t, unk) for t in tokens), dtype=np.int64, count=len(tokens))

    def fit(self, tokens: Sequence[Hashable]) -> "NGramLM":
        """Count every m-gram, m = 1..n, in `tokens`; return self.

        For each order m, two tables of (m-gram -> count) with per-context totals and
        numbers of distinct followers: `raw[m]` holds count(h, w); `cont[m]` (m < n) holds
        Kneser-Ney's continuation count N1+(. h w), the number of distinct tokens seen
        just before (h, w) in the text.
        """
        tokens = _check_tokens("NGramLM.fit", "tokens", tokens)
        if len(tokens) < self.n:
            raise ValueError(f"NGramLM.fit: need at least n={self.n} tokens, got {len(tokens)}")
        self.vocab = sorted(set(tokens), key=lambda t: (type(t).__name__, repr(t)))
        self._index = {t: i for i, t in enumerate(self.vocab)}
        self.V = len(self.vocab) + 1  # + the unknown slot
        if self.V**self.n >= 2**62:
            raise ValueError(
                f"NGramLM.fit: n={self.n} with a vocabulary of {self.V - 1} tokens gives more "
                "n-grams than an int64 key can number; use a smaller n"
            )
        x = self.encode(tokens)
        self.raw, self.cont, keys = {}, {}, x.copy()  # keys: m-gram starting at each position
        grams = {}
        for m in range(1, self.n + 1):
            if m > 1:
                keys = keys[:-1] * self.V + x[m - 1 :]  # append the next token's digit
            grams[m] = np.unique(keys, return_counts=True)
            self.raw[m] = _Table(*grams[m], self.V)
        for m in range(1, self.n):  # drop the first token of each distinct (m+1)-gram
            self.cont[m] = _Table(*np.unique(grams[m + 1][0] % self.V**m, return_counts=True), self.V)
        self._fitted = True
        return self

    def _check_fitted(self, fn: str) -> None:
        if not self._fitted:
            raise ValueError(f"NGramLM.{fn}: call fit(tokens) first")

    def _order(self, fn: str, order) -> int:
        if order is None:
            return self.n
        order = _check_order(f"NGramLM.{fn}", order, "order")
        if order > self.n:
            raise ValueError(f"NGramLM.{fn}: order must be <= n={self.n} (the order it was fitted with), got {order}")
        return order

    # ------------------------------------------------------------------ probabilities
    def _p(self, ctx: np.ndarray, w: np.ndarray) -> np.ndarray:
        """P(w_i | ctx_i) for a batch: ctx (N, c) ids, all with the same context length c < n; w (N,).

        Kneser-Ney, from the unigram up: p_m = max(c(h,w) - D, 0)/c(h) + D * types(h)/c(h) * p_{m-1},
        with p_0 = 1/V, raw counts at the top level (m = c + 1) and continuation counts below;
        a context never seen passes p_{m-1} through. Add-k uses the top level only.
        """
        N, c = ctx.shape

        def key(cols):  # (N, j) ids -> (N,) base-V integers
            out = np.zeros(N, dtype=np.int64)
            for j in range(cols.shape[1]):
                out = out * self.V + cols[:, j]
            return out

        if self.smoothing == "add-k":
            h = key(ctx)
            t = self.raw[c + 1]
            return (t.count(h * self.V + w) + self.k) / (t.context(h)[0] + self.k * self.V)
        p = np.full(N, 1.0 / self.V)
        for m in range(1, c + 2):
            t = self.raw[m] if m == c + 1 else self.cont[m]
            h = key(ctx[:, c - (m - 1) :])  # the last m-1 tokens of the context
            total, types = t.context(h)
            seen = total > 0
            safe = np.where(seen, total, 1)
            interp = np.maximum(t.count(h * self.V + w) - self.D, 0.0) / safe + self.D * types / safe * p
            p = np.where(seen, interp, p)
        return p

    def prob(self, context: Sequence[Hashable], token: Hashable, order: int | None = None) -> float:
        """P(token | the last order-1 tokens of context), smoothed; always > 0.

        A context shorter than order - 1 (the start of a text) uses what there is.
        """
        self._check_fitted("prob")
        order = self._order("prob", order)
        ctx = self.encode(_last(context, order - 1))
        return float(self._p(ctx[None, :], self.encode([token]))[0])

    def probs(self, context: Sequence[Hashable], order: int | None = None) -> np.ndarray:
        """P(w | context) for every w in `self.vocab`, shape (len(vocab),); sums to 1 - P(unknown)."""
        self._check_fitted("probs")
        order = self._order("probs", order)
        ctx = self.encode(_last(context, order - 1))
        n = len(self.vocab)
        return self._p(np.repeat(ctx[None, :], n, axis=0), np.arange(n, dtype=np.int64))

    # ------------------------------------------------------------------ scoring and sampling
    def token_log2probs(self, tokens: Sequence[Hashable], order: int | None = None) -> np.ndarray:
        """log2 P(token_i | the up to order-1 tokens before it), for every i, shape (len(tokens),).

        Nothing before the text is assumed, so the first order-2 tokens have shorter contexts.
        """
        self._check_fitted("token_log2probs")
        order = self._order("token_log2probs", order)
        tokens = _check_tokens("NGramLM.token_log2probs", "tokens", tokens)
        if len(tokens) == 0:
            raise ValueError("NGramLM.token_log2probs: tokens is empty")
        y = self.encode(tokens)
        out = np.empty(len(y))
        c = order - 1
        for i in range(min(c, len(y))):  # the short-context start
            out[i] = self._p(y[None, :i], y[i : i + 1])[0]
        if len(y) > c:  # the bulk: (N, c) sliding windows
            windows = np.lib.stride_tricks.sliding_window_view(y[:-1], c) if c else np.zeros((len(y), 0), np.int64)
            out[c:] = self._p(windows[: len(y) - c], y[c:])
        return np.log2(out)

    def unseen_share(self, tokens: Sequence[Hashable], order: int | None = None) -> float:
        """Share of the order-grams of `tokens` whose training count is zero: `unseen_share` without recounting.

        >>> NGramLM(2).fit("the cat sat").unseen_share("the dog", 2)   # 'th', 'he', 'e ' seen; ' d', 'do', 'og' not
        0.5
        """
        self._check_fitted("unseen_share")
        order = self._order("unseen_share", order)
        y = self.encode(_check_tokens("NGramLM.unseen_share", "tokens", tokens))
        if len(y) < order:
            raise ValueError(f"NGramLM.unseen_share: tokens has fewer than order={order} tokens")
        keys = y[: len(y) - order + 1].copy()
        for j in range(1, order):
            keys = keys * self.V + y[j : len(y) - order + 1 + j]
        return float((self.raw[order].count(keys) == 0).mean())

    def bits_per_token(self, tokens: Sequence[Hashable], order: int | None = None) -> float:
        """Held-out cross-entropy in bits: the mean of -log2 P(token_i | context); 2 ** it = perplexity."""
        return float(-self.token_log2probs(tokens, order).mean())

    def generate(
        self,
        prompt: Sequence[Hashable],
        n_tokens: int,
        *,
        temperature: float = 1.0,
        seed: int = 0,
        order: int | None = None,
    ) -> list:
        """Continue `prompt` by sampling n_tokens tokens one at a time; returns the new tokens only.

        temperature divides the log-probabilities before renormalising (1 = the model itself).
        """
        self._check_fitted("generate")
        order = self._order("generate", order)
        check_int("NGramLM.generate", "n_tokens", n_tokens, low=0)
        check_number("NGramLM.generate", "temperature", temperature, low=0, low_open=True)
        rng = np.random.default_rng(seed)
        history, out = list(prompt), []
        for _ in range(n_tokens):
            logp = np.log(self.probs(history, order)) / temperature
            p = np.exp(logp - logp.max())
            w = self.vocab[rng.choice(len(p), p=p / p.sum())]
            history.append(w)
            out.append(w)
        return out

    def __repr__(self) -> str:
        state = f"{len(self.vocab)} token types" if self._fitted else "not fitted"
        return f"NGramLM(n={self.n}, smoothing={self.smoothing!r}, {state})"


class _Table:
    """Sorted m-gram keys with their counts, and per context (key // V) the total and the number of types."""

    def __init__(self, keys: np.ndarray, counts: np.ndarray, V: int):
        self.keys, self.counts = keys, counts.astype(np.float64)
        ctx = keys // V  # sorted too: keys are sorted
        self.ctx_keys, start, self.ctx_types = np.unique(ctx, return_index=True, return_counts=True)
        self.ctx_totals = np.add.reduceat(self.counts, start)

    @staticmethod
    def _find(sorted_keys: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.searchsorted(sorted_keys, q)
        idx = np.minimum(idx, len(sorted_keys) - 1)
        return idx, sorted_keys[idx] == q

    def count(self, q: np.ndarray) -> np.ndarray:
        """count of each m-gram key in q (0 when never seen)."""
        idx, found = self._find(self.keys, q)
        return np.where(found, self.counts[idx], 0.0)

    def context(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(total count, number of distinct next tokens) of each context key in h (0, 0 when never seen)."""
        idx, found = self._find(self.ctx_keys, h)
        return np.where(found, self.ctx_totals[idx], 0.0), np.where(found, self.ctx_types[idx], 0.0)
