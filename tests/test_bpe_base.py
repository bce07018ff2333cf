"""course_utils.bpe_base, the merge engine both tokenizers share: pair counts, merge_pair, and the
incremental trainer equal to recounting, under both tie rules; and the import layout (no cycle)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.bpe_base import incremental_merges, merge_pair, naive_merges, pair_counts


def test_pair_counts():
    assert pair_counts([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert pair_counts("aaa", freq=3) == {("a", "a"): 6}  # overlapping pairs both count
    assert list(pair_counts("bab")) == [("b", "a"), ("a", "b")]  # first-occurrence order
    total = {}
    pair_counts([1, 2], 2, total)
    assert pair_counts([2, 1, 2], 1, total) is total and total == {(1, 2): 3, (2, 1): 1}
    assert pair_counts([7]) == {} and pair_counts([]) == {}


def test_merge_pair():
    assert merge_pair(["a", "a", "a"], ("a", "a")) == ["aa", "a"]  # left to right, no overlap
    assert merge_pair(["a", "a", "a", "a"], ("a", "a")) == ["aa", "aa"]
    assert merge_pair([1, 2, 1, 2], (1, 2), 256) == [256, 256]
    assert merge_pair([1, 2, 3, 1, 2], (1, 2), 4) == [4, 3, 4]
    with pytest.raises(TypeError, match="pair must be a tuple of two symbols"):
        merge_pair([1, 2], [1, 2])


def test_engine_first_occurrence_on_ints():
    words, freqs = [[1, 2, 3], [3, 1, 2], [2, 3]], [1, 1, 1]
    a = incremental_merges([w[:] for w in words], freqs, 3, new_symbol=lambda x, y: (x, y))
    b = naive_merges([w[:] for w in words], freqs, 3, new_symbol=lambda x, y: (x, y))
    assert a == b and a[0] == (1, 2)  # (1,2) and (2,3) both occur twice; (1,2) comes first


def test_words_are_merged_in_place():
    words = [[1, 2, 3, 1, 2], [1, 2]]
    next_id = iter(range(4, 100))
    assert incremental_merges(words, [1, 2], 5, new_symbol=lambda a, b: next(next_id)) == [(1, 2), (4, 3), (5, 4)]
    assert words == [[6], [4]]  # stops early: no pair left


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=8), min_size=1, max_size=6),
    st.integers(0, 10),
    st.booleans(),
)
def test_incremental_equals_naive(words, n, ranked):
    """Small alphabets force overlaps and ties; both tie rules, and the merged words must agree too."""
    freqs = [1 + i % 3 for i in range(len(words))]
    rank = (lambda s: -s) if ranked else None  # any fixed order: here larger ids first
    fast_words, slow_words = [w[:] for w in words], [w[:] for w in words]
    fast_ids, slow_ids = iter(range(100, 200)), iter(range(100, 200))
    fast = incremental_merges(fast_words, freqs, n, new_symbol=lambda a, b: next(fast_ids), rank=rank)
    slow = naive_merges(slow_words, freqs, n, new_symbol=lambda a, b: next(slow_ids), rank=rank)
    assert fast == slow and fast_words == slow_words


def test_engine_validation():
    with pytest.raises(ValueError, match="num_merges must be an int >= 0"):
        incremental_merges([[1, 2]], [1], -1, new_symbol=max)
    with pytest.raises(TypeError, match="num_merges must be an int"):
        naive_merges([[1, 2]], [1], 2.0, new_symbol=max)
    with pytest.raises(TypeError, match="new_symbol must be callable"):
        incremental_merges([[1, 2]], [1], 1, new_symbol=256)
    with pytest.raises(ValueError, match="same length"):
        incremental_merges([[1, 2], [2, 1]], [1], 1, new_symbol=max)


@pytest.mark.parametrize(
    "module, other", [("course_utils.bpe", "course_utils.bytelevel"), ("course_utils.bytelevel", "course_utils.bpe")]
)
def test_no_import_cycle(module, other):
    """bpe (word level) and bytelevel (ByteLevelBPE) both stand on bpe_base; neither imports the other."""
    code = f"import sys, {module}; assert 'course_utils.bpe_base' in sys.modules; print('{other}' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False", f"importing {module} also imported {other}"
