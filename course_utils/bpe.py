"""Byte-pair encoding (Sennrich et al., 2016), word level: the teaching version and a fast trainer.

BPE starts from characters and repeatedly merges the most frequent adjacent pair of
symbols into a new symbol. Training learns an ordered list of merges; tokenizing a
word replays those merges on it, in order. This module holds the word-level version
of notebook 03 (words with an end-of-word marker `</w>`, as in the lecture's example);
`course_utils.bytelevel` builds the GPT-2-style byte-level tokenizer on the same engine
(`ByteLevelBPE` is importable from here too).

Concessions, stated up front:
- Ties between equally frequent pairs are broken by *first occurrence*: the pair that
  appears first when the words are read in the order of `word_counts` (a dict keeps
  insertion order), left to right. This reproduces the lecture's 10 merges exactly;
  libraries use other rules (see `course_utils.bytelevel`), so merge lists of equal
  counts can legitimately differ.
- `train_bpe` recounts every pair after every merge: simple and slow, O(merges x corpus).
  `train_bpe_fast` updates the counts of only the words a merge touched and gives the
  identical merge list (tested); `incremental_merges` is that engine.
- Pure Python: fine for a few million characters, not for a web crawl.
"""
from __future__ import annotations

import heapq
from typing import Callable, Hashable, Iterable, Sequence

Pair = tuple  # (left symbol, right symbol)


# ----------------------------------------------------------------------------- validation
def _check_word_counts(word_counts, fn: str) -> None:
    if not isinstance(word_counts, dict):
        raise TypeError(f"{fn}: word_counts must be a dict {{word: count}}, got {type(word_counts).__name__}")
    for w, c in word_counts.items():
        if not isinstance(w, str) or not w:
            raise ValueError(f"{fn}: word_counts keys must be non-empty strings, got {w!r}")
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise ValueError(f"{fn}: word_counts[{w!r}] must be a positive int, got {c!r}")


def _check_count(n, name: str, fn: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{fn}: {name} must be an int, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"{fn}: {name} must be >= 0, got {n}")


def _check_eow(end_of_word, fn: str) -> str:
    if end_of_word is None:
        return ""
    if not isinstance(end_of_word, str):
        raise TypeError(f"{fn}: end_of_word must be a string (or '' / None for no marker), got {type(end_of_word).__name__}")
    return end_of_word


# ----------------------------------------------------------------------------- the three small steps
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
        for pair in zip(symbols, symbols[1:]):
            counts[pair] = counts.get(pair, 0) + freq
    return counts


def merge_pair(symbols: Sequence, pair: Pair, new_symbol=None) -> list:
    """Replace every occurrence of `pair` in `symbols`, scanning left to right, by one symbol.

    >>> merge_pair(["a", "a", "a", "b"], ("a", "a"))
    ['aa', 'a', 'b']

    Occurrences cannot overlap: after merging positions 0-1, the scan continues at 2.
    `new_symbol` defaults to the two strings glued together (byte-level BPE passes an id).
    """
    if not (isinstance(pair, tuple) and len(pair) == 2):
        raise TypeError(f"merge_pair: pair must be a tuple of two symbols, got {pair!r}")
    a, b = pair
    new = a + b if new_symbol is None else new_symbol
    out, i, n = [], 0, len(symbols)
    while i < n:
        if i < n - 1 and symbols[i] == a and symbols[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


# ----------------------------------------------------------------------------- training, the slow clear way
def _corpus(word_counts: dict[str, int], end_of_word: str) -> dict[tuple, int]:
    return {tuple(word_to_symbols(w, end_of_word)): c for w, c in word_counts.items()}


def train_bpe(word_counts: dict[str, int], num_merges: int, end_of_word: str = "</w>") -> list[tuple[str, str]]:
    """Learn up to `num_merges` merges from {word: count}; ties go to the pair seen first.

    >>> train_bpe({"low": 5, "lower": 2, "newest": 6, "widest": 3}, 3)
    [('e', 's'), ('es', 't'), ('est', '</w>')]

    Recounts every pair after every merge (the textbook algorithm). Stops early when no
    pair is left (every word is one symbol).
    """
    _check_word_counts(word_counts, "train_bpe")
    _check_count(num_merges, "num_merges", "train_bpe")
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
    _check_count(num_merges, "num_merges", "bpe_trace")
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


def bpe_vocabulary(word_counts: dict[str, int], merges: Iterable[tuple[str, str]], end_of_word: str = "</w>") -> list[str]:
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
def incremental_merges(words: list[list], freqs: list[int], num_merges: int, *,
                       new_symbol: Callable[[Hashable, Hashable], Hashable],
                       rank: Callable[[Hashable], int] | None = None,
                       progress: bool = False, desc: str = "BPE merges") -> list[Pair]:
    """The BPE merge loop with incremental pair counts; `words` (lists of symbols) are merged in place.

    words[i] occurs freqs[i] times. Instead of recounting the corpus after each merge, we
    keep `counts[pair]` and `where[pair]` (the indices of words holding the pair) and
    update only the words the merge touched: remove their old pairs, add their new ones.
    The best pair comes from a max-heap with lazy deletion: an entry whose stored count
    is stale is pushed back with its current count (counts of old pairs only fall; new
    pairs, which contain the new symbol, are pushed once after the merge that made them).

    Ties: with `rank=None`, the pair whose first occurrence comes first (word index,
    then position), as `train_bpe` does; with `rank`, the pair with the smallest
    (rank(left), rank(right)), a fixed order (what `tokenizers` does with token ids).
    `new_symbol(a, b)` makes the merged symbol (string concatenation, or the next id).
    """
    counts: dict[Pair, int] = {}
    where: dict[Pair, set[int]] = {}
    for i, (w, f) in enumerate(zip(words, freqs)):
        for p in zip(w, w[1:]):
            counts[p] = counts.get(p, 0) + f
            where.setdefault(p, set()).add(i)

    first = rank is None
    order = {p: k for k, p in enumerate(counts)} if first else None  # static heap key for "first" mode
    key = (lambda p: order.setdefault(p, len(order))) if first else (lambda p: (rank(p[0]), rank(p[1])))
    heap = [(-c, key(p), p) for p, c in counts.items()]
    heapq.heapify(heap)

    def first_occurrence(p):  # (word index, position) of the pair's first occurrence
        i = min(where[p])
        w = words[i]
        return i, next(j for j in range(len(w) - 1) if w[j] == p[0] and w[j + 1] == p[1])

    def pop_valid():  # the top entry whose count is current, or None
        while heap:
            negc, k, p = heapq.heappop(heap)
            c = counts.get(p, 0)
            if c == -negc and c > 0:
                return negc, k, p
            if c > 0:
                heapq.heappush(heap, (-c, k, p))
        return None

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=num_merges, desc=desc, leave=False)
    merges: list[Pair] = []
    for _ in range(num_merges):
        top = pop_valid()
        if top is None:
            break
        if first:  # gather every pair tied at the top count, keep the earliest occurrence
            ties = [top]
            while heap and heap[0][0] == top[0]:
                nxt = pop_valid()
                if nxt is None:
                    break
                if nxt[0] != top[0]:
                    heapq.heappush(heap, nxt)
                    break
                ties.append(nxt)
            ties.sort(key=lambda t: first_occurrence(t[2]))
            top = ties[0]
            for t in ties[1:]:
                heapq.heappush(heap, t)
        pair = top[2]
        a, b = pair
        new = new_symbol(a, b)
        merges.append(pair)
        born: set[Pair] = set()
        for i in sorted(where.pop(pair)):
            w, f = words[i], freqs[i]
            merged = merge_pair(w, pair, new)
            old_pairs, new_pairs = list(zip(w, w[1:])), list(zip(merged, merged[1:]))
            for p in old_pairs:
                counts[p] -= f
            for p in new_pairs:
                counts[p] = counts.get(p, 0) + f
                if new in p:
                    born.add(p)
            for p in set(old_pairs) - set(new_pairs):
                if p != pair:
                    where[p].discard(i)
            for p in set(new_pairs) - set(old_pairs):
                where.setdefault(p, set()).add(i)
            words[i] = merged
        counts.pop(pair, None)
        for p in born:
            if counts.get(p, 0) > 0:
                heapq.heappush(heap, (-counts[p], key(p), p))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return merges


def naive_merges(words: list[list], freqs: list[int], num_merges: int, *,
                 new_symbol: Callable[[Hashable, Hashable], Hashable],
                 rank: Callable[[Hashable], int] | None = None) -> list[Pair]:
    """Reference for `incremental_merges`: recount every pair of every word before each merge.

    Same tie rules, same in-place update of `words`; O(merges x corpus), for tests.
    """
    merges: list[Pair] = []
    for _ in range(num_merges):
        counts: dict[Pair, int] = {}
        for w, f in zip(words, freqs):
            for p in zip(w, w[1:]):
                counts[p] = counts.get(p, 0) + f
        if not counts:
            break
        if rank is None:
            best = max(counts, key=counts.get)
        else:
            best = min(counts, key=lambda p: (-counts[p], rank(p[0]), rank(p[1])))
        new = new_symbol(*best)
        for i, w in enumerate(words):
            words[i] = merge_pair(w, best, new)
        merges.append(best)
    return merges


def train_bpe_fast(word_counts: dict[str, int], num_merges: int, end_of_word: str = "</w>",
                   progress: bool = False) -> list[tuple[str, str]]:
    """Same result as `train_bpe` (same first-occurrence ties), with incremental pair counts.

    >>> train_bpe_fast({"low": 5, "lower": 2, "newest": 6, "widest": 3}, 3)
    [('e', 's'), ('es', 't'), ('est', '</w>')]
    """
    _check_word_counts(word_counts, "train_bpe_fast")
    _check_count(num_merges, "num_merges", "train_bpe_fast")
    eow = _check_eow(end_of_word, "train_bpe_fast")
    words = [word_to_symbols(w, eow) for w in word_counts]
    return incremental_merges(words, list(word_counts.values()), num_merges,
                              new_symbol=lambda a, b: a + b, progress=progress)


def __getattr__(name: str):
    """`from course_utils.bpe import ByteLevelBPE` works: the byte-level tokenizer lives in `bytelevel`."""
    if name in ("ByteLevelBPE", "GPT2_SPLIT_PATTERN", "bytes_to_unicode", "pre_split"):
        from course_utils import bytelevel

        return getattr(bytelevel, name)
    raise AttributeError(f"module 'course_utils.bpe' has no attribute {name!r}")
