"""The BPE merge engine both tokenizers share: count adjacent pairs, merge a pair, learn merges.

Byte-pair encoding (Sennrich et al., 2016) learns an ordered list of merges by repeatedly
replacing the most frequent adjacent pair of symbols with a new symbol. This module holds
only that engine; the two tokenizers built on it import it and never each other:

- `course_utils.bpe`: the word-level BPE of notebook 03 (characters + `</w>`, symbols are strings);
- `course_utils.bytelevel`: `ByteLevelBPE`, GPT-2 style (symbols are byte ids 0-255, then new ids).

(The layout follows Karpathy's minbpe, where `base.py` holds `get_stats` and `merge`.)

Concessions, stated up front:
- One engine for two kinds of symbol: a symbol is anything hashable, and the caller says how
  to make a merged one (`new_symbol(a, b)`: string concatenation, or the next free id) and,
  optionally, how to break ties (`rank`). A callback is slower than a loop specialised to ints
  or strings, and reads less directly; in exchange the fast trainer exists once, tested once.
- Two tie rules, picked by `rank`: first occurrence (the word-level lesson, which reproduces
  the lecture's merges) or the smaller pair of ranks (what `tokenizers` does with token ids).
- `incremental_merges` and `naive_merges` merge `words` IN PLACE: the caller gets every word
  already tokenized for free (`ByteLevelBPE` keeps them as its warm encoding cache). A side
  effect, documented in both.
- Pairs never cross a word: the caller pre-splits the text (whitespace words, or GPT-2's regex
  chunks) and passes each distinct word once, with its frequency.
- Pure Python: a dict of pair counts, a set of word indices per pair (memory ~ corpus size)
  and a heap. Fine for a few MB of text, not for a web crawl.
- `naive_merges` is here only as the reference the fast loop is tested against.
"""

from __future__ import annotations

import heapq
from typing import Callable, Hashable, Sequence

from course_utils.checks import check_callable, check_int

__all__ = ["Pair", "pair_counts", "merge_pair", "incremental_merges", "naive_merges"]

Pair = tuple  # (left symbol, right symbol)


def pair_counts(symbols: Sequence, freq: int = 1, counts: dict[Pair, int] | None = None) -> dict[Pair, int]:
    """Count every adjacent pair of `symbols`, each occurrence weighted by `freq`, into `counts` (or a new dict).

    >>> pair_counts([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    >>> pair_counts("aaa", freq=5, counts={("x", "y"): 1})   # overlapping pairs both count
    {('x', 'y'): 1, ('a', 'a'): 10}

    Pairs appear in first-occurrence order (a dict keeps insertion order): the tie rule of
    the word-level lesson relies on it. Pass one `counts` dict to add up a whole corpus.
    """
    counts = {} if counts is None else counts
    for pair in zip(symbols, symbols[1:]):
        counts[pair] = counts.get(pair, 0) + freq
    return counts


def merge_pair(symbols: Sequence, pair: Pair, new_symbol=None) -> list:
    """Replace every occurrence of `pair` in `symbols`, scanning left to right, by one symbol.

    >>> merge_pair(["a", "a", "a", "b"], ("a", "a"))
    ['aa', 'a', 'b']
    >>> merge_pair([1, 2, 3, 1, 2], (1, 2), 4)
    [4, 3, 4]

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


def incremental_merges(
    words: list[list],
    freqs: list[int],
    num_merges: int,
    *,
    new_symbol: Callable[[Hashable, Hashable], Hashable],
    rank: Callable[[Hashable], int] | None = None,
    progress: bool = False,
    desc: str = "BPE merges",
) -> list[Pair]:
    """The BPE merge loop with incremental pair counts; `words` (lists of symbols) are merged in place.

    >>> next_id = iter(range(4, 100)); words = [[1, 2, 3, 1, 2]]
    >>> incremental_merges(words, [1], 2, new_symbol=lambda a, b: next(next_id))
    [(1, 2), (4, 3)]
    >>> words                      # (1, 2) -> 4 gives [4, 3, 4]; (4, 3) and (3, 4) tie, (4, 3) came first
    [[5, 4]]

    words[i] occurs freqs[i] times. Instead of recounting the corpus after each merge, we
    keep `counts[pair]` and `where[pair]` (the indices of words holding the pair) and
    update only the words the merge touched: remove their old pairs, add their new ones.
    The best pair comes from a max-heap with lazy deletion: an entry whose stored count
    is stale is pushed back with its current count (counts of old pairs only fall; new
    pairs, which contain the new symbol, are pushed once after the merge that made them).

    Ties: with `rank=None`, the pair whose first occurrence comes first (word index,
    then position), as `course_utils.bpe.train_bpe` does; with `rank`, the pair with the
    smallest (rank(left), rank(right)), a fixed order (what `tokenizers` does with token ids).
    `new_symbol(a, b)` makes the merged symbol (string concatenation, or the next id).
    Stops early when no pair is left.
    """
    fn = "incremental_merges"
    check_int(fn, "num_merges", num_merges, low=0)
    check_callable(fn, "new_symbol", new_symbol)
    if len(words) != len(freqs):
        raise ValueError(
            f"{fn}: words and freqs must have the same length (one frequency per word), "
            f"got {len(words)} and {len(freqs)}"
        )
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
        from tqdm.auto import tqdm  # optional: loaded only when a progress bar is asked for

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


def naive_merges(
    words: list[list],
    freqs: list[int],
    num_merges: int,
    *,
    new_symbol: Callable[[Hashable, Hashable], Hashable],
    rank: Callable[[Hashable], int] | None = None,
) -> list[Pair]:
    """Reference for `incremental_merges`: recount every pair of every word before each merge.

    >>> next_id = iter(range(4, 100)); words = [[1, 2, 3, 1, 2]]
    >>> naive_merges(words, [1], 2, new_symbol=lambda a, b: next(next_id)), words
    ([(1, 2), (4, 3)], [[5, 4]])

    Same tie rules, same in-place update of `words`; O(merges x corpus), for tests.
    """
    fn = "naive_merges"
    check_int(fn, "num_merges", num_merges, low=0)
    check_callable(fn, "new_symbol", new_symbol)
    merges: list[Pair] = []
    for _ in range(num_merges):
        counts: dict[Pair, int] = {}
        for w, f in zip(words, freqs):
            pair_counts(w, f, counts)
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
