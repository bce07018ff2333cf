"""Byte-pair encoding (Sennrich et al., 2016), word level: the teaching version and a fast trainer.

BPE starts from characters and repeatedly merges the most frequent adjacent pair of
symbols into a new symbol. Training learns an ordered list of merges; tokenizing a
word replays those merges on it, in order. This module holds the word-level version
of notebook 03 (words with an end-of-word marker `</w>`, as in the lecture's example, the toy
corpus of Sennrich et al.'s Algorithm 1).
The merge engine it shares with the GPT-2-style byte-level tokenizer (`pair_counts`,
`merge_pair`, `incremental_merges`) lives in `course_utils.bpe_base`; the byte-level
tokenizer itself is `from course_utils.bytelevel import ByteLevelBPE`.

Concessions, stated up front:
- Ties between equally frequent pairs are broken by *first occurrence*: the pair that
  appears first when the words are read in the order of `word_counts` (a dict keeps
  insertion order), left to right. This reproduces the lecture's 10 merges exactly;
  libraries use other rules (see `course_utils.bytelevel`), so merge lists of equal
  counts can legitimately differ.
- `train_bpe` recounts every pair after every merge: simple and slow, O(merges x corpus).
  `train_bpe_fast` updates the counts of only the words a merge touched and gives the
  identical merge list (tested); `course_utils.bpe_base.incremental_merges` is that engine.
- Pure Python: fine for a few million characters, not for a web crawl.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from course_utils.bpe_base import Pair, incremental_merges, merge_pair, pair_counts
from course_utils.checks import check_int

__all__ = [
    "word_to_symbols",
    "count_pairs",
    "train_bpe",
    "bpe_trace",
    "bpe_vocabulary",
    "apply_merges",
    "train_bpe_fast",
]


# ----------------------------------------------------------------------------- validation
def _check_word_counts(word_counts, fn: str) -> None:
    """{non-empty word: count >= 1}: what every trainer here starts from."""
    if not isinstance(word_counts, dict):
        raise TypeError(f"{fn}: word_counts must be a dict {{word: count}}, got {type(word_counts).__name__}")
    for w, c in word_counts.items():
        if not isinstance(w, str) or not w:
            raise ValueError(f"{fn}: word_counts keys must be non-empty strings, got {w!r}")
        check_int(fn, f"word_counts[{w!r}]", c)


def _check_eow(end_of_word, fn: str) -> str:
    """The end-of-word marker as a string ('' for none; None means '')."""
    if end_of_word is None:
        return ""
    if not isinstance(end_of_word, str):
        raise TypeError(
            f"{fn}: end_of_word must be a string (or '' / None for no marker), got {type(end_of_word).__name__}"
        )
    return end_of_word


# ----------------------------------------------------------------------------- the small steps
# (the third, merge_pair, is shared with the byte-level tokenizer: course_utils.bpe_base)
def word_to_symbols(word: str, end_of_word: str = "</w>") -> list[str]:
    """Split a word into characters and append the end-of-word marker.

    >>> word_to_symbols("low")
    ['l', 'o', 'w', '</w>']

    The marker makes "est" at the end of "newest" a different symbol from "est" inside
    "estate", so the words can be glued back together after tokenization.
    """
    if not isinstance(word, str):
        raise TypeError(f"word_to_symbols: word must be a str, got {type(word).__name__}")
    eow = _check_eow(end_of_word, "word_to_symbols")
    return list(word) + ([eow] if eow else [])


def count_pairs(corpus: dict[tuple, int]) -> dict[Pair, int]:
    """Frequency of every adjacent symbol pair, weighted by word frequency, in first-occurrence order.

    >>> count_pairs({("l", "o", "w"): 5, ("a", "a", "a"): 1})
    {('l', 'o'): 5, ('o', 'w'): 5, ('a', 'a'): 2}

    Overlapping pairs count: "a a a" holds the pair (a, a) twice (positions 0-1 and 1-2).
    """
    if not isinstance(corpus, dict):
        raise TypeError(f"count_pairs: corpus must be a dict {{symbols tuple: count}}, got {type(corpus).__name__}")
    counts: dict[Pair, int] = {}
    for symbols, freq in corpus.items():
        pair_counts(symbols, freq, counts)  # adds this word's pairs, freq times each
    return counts


# ----------------------------------------------------------------------------- training, the slow clear way
def _corpus(word_counts: dict[str, int], end_of_word: str) -> dict[tuple, int]:
    """{word: count} -> {symbols tuple: count}: every word split into characters (+ marker)."""
    return {tuple(word_to_symbols(w, end_of_word)): c for w, c in word_counts.items()}


def train_bpe(word_counts: dict[str, int], num_merges: int, end_of_word: str = "</w>") -> list[tuple[str, str]]:
    """Learn up to `num_merges` merges from {word: count}; ties go to the pair seen first.

    >>> train_bpe({"low": 5, "lower": 2, "newest": 6, "widest": 3}, 3)
    [('e', 's'), ('es', 't'), ('est', '</w>')]

    Recounts every pair after every merge (the textbook algorithm). Stops early when no
    pair is left (every word is one symbol).
    """
    _check_word_counts(word_counts, "train_bpe")
    check_int("train_bpe", "num_merges", num_merges, low=0)
    eow = _check_eow(end_of_word, "train_bpe")
    corpus = _corpus(word_counts, eow)
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs = count_pairs(corpus)
        if not pairs:
            break
        best = max(pairs, key=pairs.get)  # max() keeps the first of equal counts: first occurrence
        corpus = {tuple(merge_pair(s, best)): c for s, c in corpus.items()}
        merges.append(best)
    return merges


def bpe_trace(word_counts: dict[str, int], num_merges: int, end_of_word: str = "</w>") -> list[dict]:
    """Every step of `train_bpe`, for tables and the step-through widget.

    Step k (k = 0 .. number of merges) is a dict with
    `corpus` ({segmented word as tuple: count} before merge k+1), `pairs` (its pair counts),
    `merge` (the pair merged next, None at the last step) and `vocab` (symbols so far).
    """
    _check_word_counts(word_counts, "bpe_trace")
    check_int("bpe_trace", "num_merges", num_merges, low=0)
    eow = _check_eow(end_of_word, "bpe_trace")
    corpus = _corpus(word_counts, eow)
    vocab = list(dict.fromkeys(s for symbols in corpus for s in symbols))
    steps = []
    for k in range(num_merges + 1):
        pairs = count_pairs(corpus)
        best = max(pairs, key=pairs.get) if pairs and k < num_merges else None
        steps.append({"corpus": dict(corpus), "pairs": pairs, "merge": best, "vocab": list(vocab)})
        if best is None:
            break
        corpus = {tuple(merge_pair(s, best)): c for s, c in corpus.items()}
        vocab.append(best[0] + best[1])
    return steps


def bpe_vocabulary(
    word_counts: dict[str, int], merges: Iterable[tuple[str, str]], end_of_word: str = "</w>"
) -> list[str]:
    """Base symbols in first-occurrence order, then one new symbol per merge.

    >>> bpe_vocabulary({"ab": 1}, [("a", "b")])
    ['a', 'b', '</w>', 'ab']
    """
    _check_word_counts(word_counts, "bpe_vocabulary")
    eow = _check_eow(end_of_word, "bpe_vocabulary")
    base = dict.fromkeys(s for w in word_counts for s in word_to_symbols(w, eow))
    return list(base) + [a + b for a, b in merges]


# ----------------------------------------------------------------------------- tokenizing a word
def apply_merges(word: str, merges: Sequence[tuple[str, str]], end_of_word: str = "</w>") -> list[str]:
    """Tokenize one word: split into characters (+ marker), then apply each merge, in list order, everywhere.

    >>> apply_merges("lowest", [("e", "s"), ("es", "t"), ("est", "</w>"), ("l", "o"), ("lo", "w")])
    ['low', 'est</w>']

    For a merge list learned by `train_bpe` this equals "repeatedly merge the adjacent
    pair that was learned earliest" (GPT-2's loop): a merge can only use symbols made
    by earlier merges.
    """
    if not isinstance(word, str):
        raise TypeError(f"apply_merges: word must be a str, got {type(word).__name__}")
    if not isinstance(merges, (list, tuple)):
        raise TypeError(f"apply_merges: merges must be a list of (left, right) pairs, got {type(merges).__name__}")
    symbols = word_to_symbols(word, _check_eow(end_of_word, "apply_merges"))
    for i, pair in enumerate(merges):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ValueError(f"apply_merges: merges[{i}] must be a (left, right) tuple, got {pair!r}")
        if len(symbols) < 2:
            break
        symbols = merge_pair(symbols, pair)
    return symbols


# ----------------------------------------------------------------------------- training, the fast way
def train_bpe_fast(
    word_counts: dict[str, int], num_merges: int, end_of_word: str = "</w>", progress: bool = False
) -> list[tuple[str, str]]:
    """Same result as `train_bpe` (same first-occurrence ties), with incremental pair counts.

    >>> train_bpe_fast({"low": 5, "lower": 2, "newest": 6, "widest": 3}, 3)
    [('e', 's'), ('es', 't'), ('est', '</w>')]
    """
    _check_word_counts(word_counts, "train_bpe_fast")
    check_int("train_bpe_fast", "num_merges", num_merges, low=0)
    eow = _check_eow(end_of_word, "train_bpe_fast")
    words = [word_to_symbols(w, eow) for w in word_counts]
    return incremental_merges(
        words, list(word_counts.values()), num_merges, new_symbol=lambda a, b: a + b, progress=progress
    )
