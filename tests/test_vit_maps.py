"""course_utils.vit_maps: attention rollout against Abnar & Zuidema's recipe, and position similarity."""

import math

import course_utils  # noqa: F401  (before torch: OMP_WAIT_POLICY)
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.vit_maps import attention_rollout, position_similarity, rollout_class_map


# ------------------------------------------------------------------ rollout
def _reference_rollout(attn, r=0.5):
    """Abnar & Zuidema's recipe, one image, a Python loop over layers."""
    T = attn[0].shape[-1]
    result = torch.eye(T, dtype=attn[0].dtype)
    for a in attn:
        a = (1 - r) * a.mean(0) + r * torch.eye(T, dtype=a.dtype)
        a = a / a.sum(-1, keepdim=True)
        result = a @ result
    return result


@settings(max_examples=30, deadline=None)
@given(layers=st.integers(1, 4), heads=st.integers(1, 3), t=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_rollout(layers, heads, t, seed):
    g = torch.Generator().manual_seed(seed)
    attn = [torch.randn(2, heads, t, t, generator=g, dtype=torch.float64).softmax(-1) for _ in range(layers)]
    r = attention_rollout(attn)
    assert r.shape == (2, t, t)
    assert torch.allclose(r.sum(-1), torch.ones(2, t, dtype=torch.float64)), "rows stay distributions"
    for b in range(2):
        assert torch.allclose(r[b], _reference_rollout([a[b] for a in attn]))
    assert torch.allclose(attention_rollout([a[0] for a in attn]), r[0]), "(h, T, T) input works too"
    # no residual and one head: the plain product of the attention matrices
    plain = attention_rollout(attn, residual=0.0)
    prod = attn[0].mean(1)
    for a in attn[1:]:
        prod = a.mean(1) @ prod
    assert torch.allclose(plain, prod)


def test_rollout_class_map_and_errors():
    attn = [torch.full((1, 2, 5, 5), 0.2)] * 3
    m = rollout_class_map(attn, 2)
    assert m.shape == (1, 2, 2)
    with pytest.raises(ValueError, match="1 \\+ 3x3"):
        rollout_class_map(attn, 3)
    with pytest.raises(TypeError, match="list"):
        attention_rollout(torch.ones(1, 2, 5, 5))
    with pytest.raises(ValueError, match="residual"):
        attention_rollout(attn, residual=2.0)


def test_position_similarity():
    grid = 3
    pos = torch.randn(1, grid * grid + 1, 8)
    sim = position_similarity(pos, grid)
    assert sim.shape == (grid, grid, grid, grid)
    for i in range(grid):
        for j in range(grid):
            assert math.isclose(float(sim[i, j, i, j]), 1.0, rel_tol=1e-5)
    assert torch.allclose(sim[0, 1, 2, 2], F.cosine_similarity(pos[0, 2], pos[0, 9], dim=0))
