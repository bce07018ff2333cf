"""The graded checks of notebook 03 (byte-pair encoding): references, known mistakes, hidden inputs.

Each exercise has a `check_<name>(fn)`, the hidden tests, and a catalogue of known mistakes
(`<name>_mistakes(...)`: what the usual slips return on an input, so a failure can name
the slip). The visible tests in the notebook show hand-worked examples and call the same
catalogues; the right answers on the hidden inputs come from the course's modules
(`course_utils.bpe`, `course_utils.bpe_base`, `course_utils.bytelevel`).

One class of mistake matters more here than elsewhere: **string shortcuts across symbol
boundaries**. Gluing the symbols with spaces and using `str.replace` or `str.count` looks
right on single characters, but the pair ("b", "c") then also matches inside the symbols
"ab c", which is no such pair. The hidden inputs hold multi-character symbols to catch it.

>>> wrong = count_pairs_mistakes({("a", "a", "a"): 2})
>>> [counts[("a", "a")] for counts in wrong.values()]   # right: 4 (two positions, frequency 2)
[2, 2, 2, 4]
"""

from __future__ import annotations

import re
from contextlib import contextmanager

from course_utils import bpe, bpe_base
from course_utils.bpe import apply_merges
from course_utils.bpe_base import naive_merges
from course_utils.bytelevel import ByteLevelBPE, pre_split
from course_utils.data import load_austen, load_translation_pairs
from course_utils.tools.grading import GradingError, call, expect, expect_equal

# helpers an exercise asks the student to write, not to call (passed to `call(..., forbidden=...)`)
FORBIDDEN = {
    "count_pairs": (bpe.count_pairs, bpe_base.pair_counts),
    "merge_pair": (bpe_base.merge_pair,),
    "encode_word": (apply_merges,),
    "train_byte_bpe": (
        bpe_base.naive_merges,
        bpe_base.incremental_merges,
        bpe_base.merge_pair,
        bpe_base.pair_counts,
        bpe.count_pairs,
        bpe.train_bpe,
        bpe.train_bpe_fast,
    ),
}

SEED_MERGES = [  # the lecture's ten merges on low/lower/newest/widest
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
ABWASSER_MERGES = [  # a merge list learned on text with Abwasser, Behandlung and Anlage (notebook 03, section 3)
    tuple(m.split())
    for m in [
        "A b", "a s", "e r", "s er", "w as", "Ab was", "Abwas ser", "B e", "a n", "d l",
        "h an", "n g", "u ng", "Be han", "dl ung", "Behan dlung", "A n", "a g", "l ag",
    ]
]  # fmt: skip

# a real sentence for the visible property checks (the first of Pride and Prejudice)
SAMPLE_TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife."
)

# the messages that name a mistake (keys of the catalogues); wrong answers in tests/ quote them
ONCE = "counted once"
SKIPPED = "skipped"
UNWEIGHTED = "frequencies are missing"
ACROSS = "across symbol boundaries"


# ----------------------------------------------------------------------------- exercise 2: count pairs
def _joined_count(symbols, pair) -> int:
    """Occurrences of "a b" in the symbols joined by spaces, overlaps included: the string shortcut."""
    return len(re.findall(f"(?={re.escape(pair[0] + ' ' + pair[1])})", " ".join(symbols)))


def count_pairs_mistakes(corpus: dict) -> dict:
    """What count_pairs returns after the usual slips, keyed by a message that names each one."""
    once, skipped, unweighted, joined = {}, {}, {}, {}
    for symbols, freq in corpus.items():
        pairs = list(zip(symbols, symbols[1:]))
        for pair in dict.fromkeys(pairs):  # each distinct pair once per word
            once[pair] = once.get(pair, 0) + freq
            joined[pair] = joined.get(pair, 0) + freq * _joined_count(symbols, pair)
        i = 0
        while i < len(symbols) - 1:  # jumps past a pair of equal symbols, as str.count does
            pair = (symbols[i], symbols[i + 1])
            skipped[pair] = skipped.get(pair, 0) + freq
            i += 2 if pair[0] == pair[1] else 1
        for pair in pairs:
            unweighted[pair] = unweighted.get(pair, 0) + 1
    return {
        f"a pair repeated inside a word was {ONCE}; count every position (a a a holds (a, a) twice)": once,
        f"the second of two overlapping pairs was {SKIPPED} (as str.count does); "
        "a a a a holds (a, a) three times": skipped,
        f"the word {UNWEIGHTED}: add the word's frequency for each occurrence, not 1": unweighted,
        f"pairs were counted in the symbols joined into a string, {ACROSS} ('ab c' contains 'b c'); "
        "count pairs of adjacent symbols": joined,
    }


def check_count_pairs(fn) -> None:
    """Hidden tests: runs of one symbol, multi-character symbols, one-symbol words, an empty corpus."""
    cases = [
        ({("a", "a", "a", "a", "a", "</w>"): 3, ("x", "a", "a"): 1}, "words with runs of one letter"),
        ({("lo", "w", "</w>"): 7, ("lo", "w", "e", "r", "</w>"): 1, ("s",): 4}, "a corpus with one-symbol words"),
        (
            {("e", "s", "t", "es", "t", "</w>"): 2, ("s", "t"): 1, ("ab", "c", "b", "c"): 3},
            "words made of multi-character symbols",
        ),
        ({("A", "b", "w", "a", "s", "s", "e", "r", "</w>"): 1, ("s", "s", "s"): 5}, "another corpus"),
    ]
    for corpus, on in cases:
        got = call(fn, dict(corpus), forbidden=FORBIDDEN["count_pairs"])
        expect(
            isinstance(got, dict), f"count_pairs should return a dict {{(a, b): count}}, not a {type(got).__name__}."
        )
        expect_equal(dict(got), bpe.count_pairs(corpus), "count_pairs", mistakes=count_pairs_mistakes(corpus), on=on)
    expect_equal(call(fn, {}, forbidden=FORBIDDEN["count_pairs"]), {}, "count_pairs", on="an empty corpus")


# ----------------------------------------------------------------------------- exercise 3: merge a pair
def _joined_merge(symbols, pair) -> list:
    """The string shortcut: glue with spaces, replace "a b" by "ab", split again."""
    a, b = pair
    return " ".join(symbols).replace(f"{a} {b}", a + b).split()


def merge_pair_mistakes(symbols: list, pair: tuple) -> dict:
    """What merge_pair returns after the usual slips, keyed by a message that names each one."""
    a, b = pair
    right_to_left = bpe_base.merge_pair(symbols[::-1], (b, a), a + b)[::-1]
    first_only = list(symbols)
    for i in range(len(symbols) - 1):
        if symbols[i] == a and symbols[i + 1] == b:
            first_only = list(symbols[:i]) + [a + b] + list(symbols[i + 2 :])
            break
    return {
        "the scan went right to left: merge the leftmost occurrence first ('a a a' -> 'aa a')": right_to_left,
        "only the first occurrence was merged: a merge applies everywhere in the word": first_only,
        f"the merge was done on the symbols joined into a string, {ACROSS} ('ab c' contains 'b c'); "
        "compare whole symbols": _joined_merge(symbols, pair),
    }


def check_merge_pair(fn) -> None:
    """Hidden tests: long runs, multi-character symbols whose letters look like the pair, short and empty words."""
    cases = [
        (["a", "a", "a", "a", "a", "b"], ("a", "a"), "a run of five equal symbols"),
        (["ab", "c"], ("b", "c"), "a word whose symbols end and start like the pair"),
        (["a", "bc", "a", "b"], ("a", "b"), "a word whose symbols end and start like the pair"),
        (["es", "t", "es", "t", "</w>"], ("es", "t"), "a word with the pair twice"),
        (["b", "a", "b", "a", "b"], ("a", "b"), "a word with the pair twice"),
        (["x", "y"], ("y", "x"), "a word without the pair"),
        (["a"], ("a", "a"), "a one-symbol word"),
        ([], ("a", "b"), "an empty word"),
    ]
    for symbols, pair, on in cases:
        got = call(fn, list(symbols), pair, forbidden=FORBIDDEN["merge_pair"])
        expect(isinstance(got, list), f"merge_pair should return a new list, not a {type(got).__name__}.")
        mistakes = merge_pair_mistakes(symbols, pair)
        expect_equal(got, bpe_base.merge_pair(symbols, pair), "merge_pair", mistakes=mistakes, on=on)


# ----------------------------------------------------------------------------- exercise 4: encode a word
def encode_word_mistakes(word: str, merges: list) -> dict:
    """What encode_word returns after the usual slips, keyed by a message that names each one."""
    once = list(word) + ["</w>"]
    for a, b in merges:  # each merge applied to its first occurrence only
        for i in range(len(once) - 1):
            if once[i] == a and once[i + 1] == b:
                once = once[:i] + [a + b] + once[i + 2 :]
                break
    joined = list(word) + ["</w>"]
    for pair in merges:
        joined = _joined_merge(joined, pair)
    return {
        "the end-of-word symbol '</w>' is missing: append it before merging": apply_merges(
            word, merges, end_of_word=""
        ),
        "the merges were applied in the wrong order: go through the list from first (best) to last": apply_merges(
            word, merges[::-1]
        ),
        "each merge was applied only once: apply it everywhere in the word ('a n' occurs twice)": once,
        f"the merges were done on the symbols joined into a string, {ACROSS} ('ab c' contains 'b c'); "
        "compare whole symbols": joined,
    }


def check_encode_word(fn) -> None:
    """Hidden tests: other words, merges whose letters cross symbol boundaries, a one-letter word."""
    cases = [
        ("widest", SEED_MERGES, "another word with the lecture's merges"),
        ("newer", SEED_MERGES, "another word with the lecture's merges"),
        ("Behandlungsanlage", ABWASSER_MERGES, "another German word"),
        ("Anlagenbau", ABWASSER_MERGES, "another German word"),
        ("abc", [("a", "b"), ("b", "c")], "merges that only match across a symbol boundary"),
        ("blowing", SEED_MERGES, "merges that only match across a symbol boundary"),
        ("aaaa", [("a", "a"), ("aa", "aa"), ("aaaa", "</w>")], "a word of one repeated letter"),
        ("x", SEED_MERGES, "a one-letter word"),
        ("slower", SEED_MERGES, "another word with the lecture's merges"),
    ]
    for word, merges, on in cases:
        got = call(fn, word, list(merges), forbidden=FORBIDDEN["encode_word"])
        mistakes = encode_word_mistakes(word, merges)
        expect_equal(got, apply_merges(word, merges), "encode_word", mistakes=mistakes, on=on)


# ----------------------------------------------------------------------------- exercise 5: a byte-level trainer
def byte_bpe_merges(text: str, num_merges: int) -> list[tuple[int, int]]:
    """The course's answer: GPT-2 chunks as UTF-8 byte ids, merged with first-occurrence ties; merge k is id 256 + k.

    >>> byte_bpe_merges("ba ab ab", 4)   # chunks 'ba' x1, ' ab' x2; (32, 97) and (97, 98) tie at 2
    [(32, 97), (256, 98), (98, 97)]
    """
    counts = ByteLevelBPE().chunk_counts(text)  # {chunk bytes: count}, the pre-split of `pre_split`
    ids = iter(range(256, 256 + num_merges))
    return naive_merges([list(c) for c in counts], list(counts.values()), num_merges, new_symbol=lambda a, b: next(ids))


def _merges(words: list, freqs: list, num_merges: int, *, largest: bool = False, distinct: bool = False) -> list:
    """The merge loop with a slip: ties to the largest pair of ids, or each distinct pair counted once per chunk."""
    words, merges = [list(w) for w in words], []
    for k in range(num_merges):
        counts = {}
        for w, f in zip(words, freqs):
            for p in dict.fromkeys(zip(w, w[1:])) if distinct else zip(w, w[1:]):
                counts[p] = counts.get(p, 0) + f
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], p)) if largest else max(counts, key=counts.get)
        words = [bpe_base.merge_pair(w, best, 256 + k) for w in words]
        merges.append(best)
    return merges


def train_byte_bpe_mistakes(text: str, num_merges: int) -> dict:
    """What train_byte_bpe returns after the usual slips, keyed by a message that names each one."""
    counts = {}
    for chunk in pre_split(text):
        counts[chunk] = counts.get(chunk, 0) + 1
    as_bytes = [list(c.encode("utf-8")) for c in counts]
    freqs = list(counts.values())
    return {
        "merges cross the chunks of pre_split: cut the text with pre_split first, then merge inside each chunk": _merges(
            [list(text.encode("utf-8"))], [1], num_merges
        ),
        "the symbols are characters, not bytes: start each chunk from list(chunk.encode('utf-8'))": _merges(
            [[ord(ch) for ch in c] for c in counts], freqs, num_merges
        ),
        "each distinct chunk counted once: weight its pairs by how often the chunk occurs": _merges(
            as_bytes, [1] * len(freqs), num_merges
        ),
        "ties went to the largest pair of ids: among equally frequent pairs take the one that occurs first "
        "(max(counts, key=counts.get) does)": _merges(as_bytes, freqs, num_merges, largest=True),
        f"a pair repeated inside a chunk was {ONCE}: count every position": _merges(
            as_bytes, freqs, num_merges, distinct=True
        ),
    }


@contextmanager
def _no_library_trainer():
    """While the block runs, ByteLevelBPE.train refuses (a method, which `call(forbidden=...)` cannot swap)."""
    original = ByteLevelBPE.train

    def refuse(*args, **kwargs):
        raise GradingError("your answer calls ByteLevelBPE.train, which is not allowed here: write the loop yourself.")

    ByteLevelBPE.train = refuse
    try:
        yield
    finally:
        ByteLevelBPE.train = original


def call_trainer(fn, text: str, num_merges: int):
    """`call(fn, text, num_merges)` with the course's trainers and merge helpers refused, ByteLevelBPE.train too."""
    with _no_library_trainer():
        return call(fn, text, num_merges, forbidden=FORBIDDEN["train_byte_bpe"])


def merge_list_properties(merges, num_merges: int, what: str = "train_byte_bpe") -> None:
    """What any merge list of a text with enough pairs satisfies: num_merges pairs of ids, each new, built from older ids."""
    expect(isinstance(merges, list), f"{what} should return a list of (a, b) pairs, not a {type(merges).__name__}.")
    expect(len(merges) == num_merges, f"{what} returned {len(merges)} merges; this text has pairs for {num_merges}.")
    for k, pair in enumerate(merges):
        expect(
            isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(i, int) for i in pair),
            f"{what}: merge {k} should be a tuple of two ids (ints), got {pair!r}.",
        )
        expect(
            all(0 <= i < 256 + k for i in pair),
            f"{what}: merge {k} uses id {max(pair)}, but only the bytes 0-255 and the ids of earlier "
            f"merges (256 to {255 + k}) exist by then. Merge k makes id 256 + k.",
        )
    expect(len(set(merges)) == len(merges), f"{what}: a pair is merged twice; once merged, it is gone from the text.")


def _expect_merges(got, text, num_merges, on):
    """Equal to the course's merges, or a message that names the slip or the first merge that differs."""
    expected = byte_bpe_merges(text, num_merges)
    expect(isinstance(got, list), f"train_byte_bpe should return a list of (a, b) pairs, not a {type(got).__name__}.")
    try:
        expect_equal(got, expected, "train_byte_bpe", mistakes=train_byte_bpe_mistakes(text, num_merges), on=on)
    except GradingError as e:
        if "looks like" in str(e):
            raise
        same = next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        raise GradingError(
            f"train_byte_bpe is not right (on {on}): the first {same} merges are right, "
            + (
                f"merge {same} is not."
                if same < min(len(got), len(expected))
                else f"then it returns {len(got)} in all."
            )
        ) from None


def _german(n: int = 40) -> str:
    return "\n".join(de for de, _ in load_translation_pairs("test")[:n])


def check_train_byte_bpe(fn) -> None:
    """Hidden tests: an Austen passage, German sentences (two-byte letters), a text that runs out of pairs, ''."""
    persuasion = load_austen()["Persuasion"][5000:7000]
    cases = [
        (persuasion, 40, "a passage of Persuasion"),
        (_german(), 40, "German sentences with umlauts"),
        ("naïve café, naïve ☃ café", 12, "a short text with non-ASCII letters"),
        ("xyz", 10, "a text with fewer pairs than merges"),
        ("", 3, "an empty text"),
        (persuasion, 0, "zero merges"),
    ]
    got = call_trainer(fn, persuasion, 40)
    merge_list_properties(got, 40)
    for text, n, on in cases:
        _expect_merges(call_trainer(fn, text, n), text, n, on)
