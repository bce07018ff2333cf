"""course_utils.sparse: BigBird masks and block-sparse attention against masked full attention.

The reference is `course_utils.attention.scaled_dot_product_attention` (itself tested against
torch's SDPA) and torch's `F.scaled_dot_product_attention` with the expanded mask. Property
tests draw shapes, block sizes and layouts the notebook never uses.
"""

import doctest

import course_utils  # noqa: F401  (before torch: OMP_WAIT_POLICY)
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import course_utils.sparse as sparse
from course_utils.attention import scaled_dot_product_attention
from course_utils.sparse import (
    attended_pairs,
    bigbird_layout,
    bigbird_mask,
    block_sparse_attention,
    expand_layout,
    global_mask,
    layout_indices,
    random_layout,
    sliding_window_mask,
    window_layout,
)


def test_doctests():
    result = doctest.testmod(sparse, raise_on_error=False)
    assert result.attempted >= 8 and result.failed == 0


# ------------------------------------------------------------------ masks
@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), window=st.integers(0, 45))
def test_sliding_window_against_loops(n, window):
    m = sliding_window_mask(n, window)
    ref = torch.tensor([[abs(i - j) <= window for j in range(n)] for i in range(n)])
    assert m.dtype == torch.bool and torch.equal(m, ref)
    assert torch.equal(m, m.T), "a sliding window is symmetric"
    assert attended_pairs(m) == sum(min(n - 1, i + window) - max(0, i - window) + 1 for i in range(n))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 30), g=st.integers(0, 35))
def test_global_mask(n, g):
    m = global_mask(n, g)
    gg = min(g, n)
    assert m[:gg].all() and m[:, :gg].all()
    assert not m[gg:, gg:].any()
    assert attended_pairs(m) == n * n - (n - gg) ** 2


@settings(max_examples=40, deadline=None)
@given(nb=st.integers(1, 20), r=st.integers(0, 6), w=st.integers(0, 2), g=st.integers(0, 3), seed=st.integers(0, 999))
def test_random_layout_counts_and_exclusion(nb, r, w, g, seed):
    fixed = window_layout(nb, w) | sparse.global_layout(nb, g)
    lay = random_layout(nb, r, torch.Generator().manual_seed(seed), exclude=fixed)
    free = (~fixed).sum(dim=1)
    assert torch.equal(lay.sum(dim=1), torch.clamp(free, max=r)), "n_random new blocks per row (or all that are left)"
    assert not (lay & fixed).any(), "random blocks avoid the window and global blocks"
    same = random_layout(nb, r, torch.Generator().manual_seed(seed), exclude=fixed)
    assert torch.equal(lay, same), "same seed, same pattern"


def test_bigbird_union_and_linear_growth():
    b = 16
    pairs = []
    for nb in (8, 16, 32, 64):
        lay = bigbird_layout(nb, window=1, n_global=1, n_random=2, generator=torch.Generator().manual_seed(0))
        assert (lay >= (window_layout(nb, 1) | sparse.global_layout(nb, 1))).all()
        pairs.append(attended_pairs(expand_layout(lay, b)))
    # per block row: 3 window + 2 random + 1 global column, global row sees all: ~ (6 nb + nb) b^2
    for nb, p in zip((8, 16, 32, 64), pairs):
        assert p <= 7 * nb * b * b + 2 * nb * b * b
    growth = [p2 / p1 for p1, p2 in zip(pairs, pairs[1:])]
    assert all(1.7 < x < 2.3 for x in growth), f"doubling n should about double the pairs, got ratios {growth}"


def test_bigbird_mask_is_seeded_and_checks_input():
    assert torch.equal(bigbird_mask(64, 8, seed=3), bigbird_mask(64, 8, seed=3))
    with pytest.raises(ValueError, match="multiple of block_size"):
        bigbird_mask(65, 8)
    with pytest.raises(ValueError, match="window"):
        sliding_window_mask(5, -1)
    with pytest.raises(TypeError, match="n must be an int"):
        sliding_window_mask(5.0, 1)
    with pytest.raises(TypeError, match="boolean"):
        attended_pairs(torch.ones(3, 3))
    with pytest.raises(TypeError, match="layout"):
        expand_layout(torch.ones(2, 2), 2)


# ------------------------------------------------------------------ block-sparse attention
@settings(max_examples=40, deadline=None)
@given(
    nb=st.integers(1, 9),
    b=st.integers(1, 6),
    d=st.integers(1, 8),
    d_v=st.integers(1, 8),
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    density=st.floats(0.05, 1.0),
    double=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_block_sparse_equals_masked_full_on_any_layout(nb, b, d, d_v, lead, density, double, seed):
    g = torch.Generator().manual_seed(seed)
    dtype = torch.float64 if double else torch.float32
    lay = torch.rand(nb, nb, generator=g) < density
    lay[torch.arange(nb), torch.randint(nb, (nb,), generator=g)] = True  # every query block sees something
    n = nb * b
    q, k = (torch.randn(*lead, n, d, generator=g, dtype=dtype) for _ in range(2))
    v = torch.randn(*lead, n, d_v, generator=g, dtype=dtype)
    mask = expand_layout(lay, b)
    out = block_sparse_attention(q, k, v, lay, b)
    ref, _ = scaled_dot_product_attention(q, k, v, mask)
    tol = 1e-10 if double else 2e-6
    torch.testing.assert_close(out, ref, atol=tol, rtol=tol)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=tol, rtol=tol)


@pytest.mark.parametrize("n,b,w,g,r", [(256, 32, 1, 1, 2), (96, 8, 2, 0, 1), (64, 64, 1, 1, 1), (120, 12, 0, 2, 3)])
def test_block_sparse_on_bigbird(n, b, w, g, r):
    gen = torch.Generator().manual_seed(1)
    lay = bigbird_layout(n // b, w, g, r, gen)
    q, k, v = (torch.randn(2, 4, n, 16, generator=gen) for _ in range(3))
    torch.testing.assert_close(
        block_sparse_attention(q, k, v, lay, b),
        scaled_dot_product_attention(q, k, v, expand_layout(lay, b))[0],
        atol=2e-6,
        rtol=2e-6,
    )


def test_layout_indices_cover_the_layout():
    lay = bigbird_layout(12, 1, 1, 2, torch.Generator().manual_seed(5))
    dense, rows, idx, valid = layout_indices(lay)
    rebuilt = torch.zeros_like(lay)
    rebuilt[dense] = True
    for r, i, ok in zip(rows, idx, valid):
        rebuilt[r, i[ok]] = True
        assert len(set(i[ok].tolist())) == int(ok.sum()), "no key block listed twice"
    assert torch.equal(rebuilt, lay)
    with pytest.raises(ValueError, match="attend to no key block"):
        layout_indices(torch.zeros(3, 3, dtype=torch.bool))


def test_block_sparse_checks_input():
    lay = torch.ones(4, 4, dtype=torch.bool)
    x = torch.randn(1, 16, 8)
    with pytest.raises(ValueError, match="multiple of block_size"):
        block_sparse_attention(x, x, x, lay, 5)
    with pytest.raises(ValueError, match=r"layout must be \(2, 2\)"):
        block_sparse_attention(x, x, x, lay, 8)
    with pytest.raises(TypeError, match="floating-point"):
        block_sparse_attention(x.long(), x, x, lay, 4)


def test_block_sparse_has_gradients():
    lay = bigbird_layout(4, 1, 1, 1, torch.Generator().manual_seed(0))
    q, k, v = (torch.randn(1, 32, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda a, b_, c: block_sparse_attention(a, b_, c, lay, 8), (q, k, v))
