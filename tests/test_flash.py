"""course_utils.flash: tiled attention with the online softmax against exact attention.

References: torch's `F.scaled_dot_product_attention` (with and without is_causal) and
`course_utils.attention`. Property tests draw tile sizes (including 1, ragged last tiles and
tiles larger than the sequence) and shapes the notebook never uses.
"""

import doctest
import math

import course_utils  # noqa: F401  (before torch: OMP_WAIT_POLICY)
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import course_utils.flash as flash
from course_utils.attention import scaled_dot_product_attention
from course_utils.flash import online_softmax_update, tiled_attention


def test_doctests():
    result = doctest.testmod(flash, raise_on_error=False)
    assert result.attempted >= 3 and result.failed == 0


@settings(max_examples=60, deadline=None)
@given(
    t_q=st.integers(1, 40),
    t_k=st.integers(1, 40),
    d=st.integers(1, 9),
    d_v=st.integers(1, 9),
    block_q=st.integers(1, 50),
    block_k=st.integers(1, 50),
    lead=st.lists(st.integers(1, 3), max_size=2),
    causal=st.booleans(),
    double=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_tiled_equals_exact(t_q, t_k, d, d_v, block_q, block_k, lead, causal, double, seed):
    g = torch.Generator().manual_seed(seed)
    dtype = torch.float64 if double else torch.float32
    q = torch.randn(*lead, t_q, d, generator=g, dtype=dtype) * 3
    k = torch.randn(*lead, t_k, d, generator=g, dtype=dtype) * 3
    v = torch.randn(*lead, t_k, d_v, generator=g, dtype=dtype)
    out = tiled_attention(q, k, v, block_q, block_k, is_causal=causal)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert out.shape == (*lead, t_q, d_v)
    torch.testing.assert_close(out, ref, atol=rounding_bound(q, k, v, block_k), rtol=0)


def rounding_bound(q, k, v, block_k) -> float:
    """How far two exact-in-theory attentions may differ by rounding: 4 eps (max|s| + tiles) max|v|.

    A score s rounded by eps relative gives exp(s) a relative error of |s| eps, so large scores
    (here up to ~50) dominate; each key tile adds one rescale-and-add. Measured on 4000 random
    cases (float32) the worst error was 0.48 of eps (max|s| + tiles) max|v|; a wrong rescale is
    off by O(1), a million times more.
    """
    scores = (q @ k.transpose(-2, -1)).abs().max().item() / math.sqrt(q.shape[-1])
    tiles = math.ceil(k.shape[-2] / block_k)
    return 4 * torch.finfo(q.dtype).eps * (scores + tiles) * v.abs().max().item()


def test_large_scores_do_not_overflow():
    q = torch.full((1, 4, 2), 300.0)
    k = torch.randn(1, 9, 2) * 300
    v = torch.randn(1, 9, 3)
    out = tiled_attention(q, k, v, 2, 2)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, scaled_dot_product_attention(q, k, v)[0])


@settings(max_examples=40, deadline=None)
@given(t=st.integers(1, 30), cuts=st.lists(st.integers(1, 29), max_size=5), seed=st.integers(0, 999))
def test_online_update_on_any_split_of_a_row(t, cuts, seed):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(3, t, generator=g, dtype=torch.float64) * 10
    v = torch.randn(t, 4, generator=g, dtype=torch.float64)
    edges = sorted({0, t, *[c for c in cuts if c < t]})
    m = torch.full((3, 1), float("-inf"), dtype=torch.float64)
    l, acc = torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, 4, dtype=torch.float64)
    for a, b in zip(edges, edges[1:]):
        m, l, acc = online_softmax_update(m, l, acc, s[:, a:b], v[a:b])
    torch.testing.assert_close(m, s.max(-1, keepdim=True).values)
    torch.testing.assert_close(l, torch.exp(s - m).sum(-1, keepdim=True))
    torch.testing.assert_close(acc / l, torch.softmax(s, -1) @ v)


def test_online_update_ignores_a_fully_blocked_tile():
    m, l, acc = torch.full((1, 1), float("-inf")), torch.zeros(1, 1), torch.zeros(1, 2)
    m, l, acc = online_softmax_update(m, l, acc, torch.full((1, 3), float("-inf")), torch.ones(3, 2))
    assert torch.isinf(m).all() and (l == 0).all() and (acc == 0).all()
    m, l, acc = online_softmax_update(m, l, acc, torch.tensor([[0.0]]), torch.tensor([[2.0, 3.0]]))
    torch.testing.assert_close(acc / l, torch.tensor([[2.0, 3.0]]))


def test_gradients_flow():
    q, k, v = (torch.randn(5, 3, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda a, b, c: tiled_attention(a, b, c, 2, 3, is_causal=True), (q, k, v))


def test_bad_input():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="block_q"):
        tiled_attention(x, x, x, 0, 2)
    with pytest.raises(TypeError, match="floating-point"):
        tiled_attention(x.long(), x, x)
    with pytest.raises(ValueError, match="d_k"):
        tiled_attention(x, torch.randn(4, 2), x)
