"""course_utils.attention against PyTorch: F.scaled_dot_product_attention and nn.MultiheadAttention.

Random shapes, dtypes and masks (hypothesis), masks in every broadcast form, self- and
cross-attention, the fully-masked-row rule, and bad input raising a clear error.
"""

import doctest

import course_utils  # noqa: F401  (before torch: OMP_WAIT_POLICY)
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import course_utils.attention as attention
from course_utils.attention import (
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    split_heads,
)

TOL = {torch.float32: 1e-6, torch.float64: 1e-10}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_doctests():
    result = doctest.testmod(attention, raise_on_error=False)
    assert result.attempted >= 6 and result.failed == 0


# ------------------------------------------------------------------ scaled dot-product attention
@settings(max_examples=60, deadline=None)
@given(
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    t_q=st.integers(1, 7),
    t_k=st.integers(1, 7),
    d_k=st.integers(1, 9),
    d_v=st.integers(1, 9),
    double=st.booleans(),
    masked=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_sdpa_matches_torch(lead, t_q, t_k, d_k, d_v, double, masked, seed):
    g = torch.Generator().manual_seed(seed)
    dtype = torch.float64 if double else torch.float32
    q = torch.randn(*lead, t_q, d_k, generator=g, dtype=dtype)
    k = torch.randn(*lead, t_k, d_k, generator=g, dtype=dtype)
    v = torch.randn(*lead, t_k, d_v, generator=g, dtype=dtype)
    mask = None
    if masked:
        mask = torch.rand(*lead, t_q, t_k, generator=g) < 0.7
        mask[..., 0] = True  # every row keeps a key (fully blocked rows: own test)
    out, w = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert out.shape == (*lead, t_q, d_v) and w.shape == (*lead, t_q, t_k)
    assert out.dtype == dtype
    torch.testing.assert_close(out, ref, atol=TOL[dtype], rtol=TOL[dtype])
    torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))
    if masked:
        assert (w[~mask] == 0).all(), "blocked positions must get exactly zero weight"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask_shape", [(5, 6), (1, 5, 6), (2, 1, 5, 6), (2, 3, 1, 6), (6,), (2, 3, 5, 6)])
def test_sdpa_broadcast_masks(mask_shape, device):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 4, generator=g).to(device) for n in (5, 6, 6))
    mask = (torch.rand(mask_shape, generator=g) < 0.6).to(device)
    mask[..., 0] = True
    out, w = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.expand(2, 3, 5, 6))  # torch wants >= 2-D
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    assert (w.masked_select(~mask.expand_as(w)) == 0).all()


def test_sdpa_broadcasts_leading_dims():
    q = torch.randn(2, 4, 5, 8)  # (B, h, T_q, d)
    k = torch.randn(1, 4, 7, 8)  # shared over the batch
    v = torch.randn(4, 7, 3)  # shared over the batch, no batch dim
    out, w = scaled_dot_product_attention(q, k, v)
    assert out.shape == (2, 4, 5, 3) and w.shape == (2, 4, 5, 7)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k.expand(2, 4, 7, 8), v.expand(2, 4, 7, 3)))


def test_sdpa_mask_and_v_with_more_leading_dims_than_q_k():
    q, k, v = torch.randn(5, 4), torch.randn(6, 4), torch.randn(2, 3, 6, 4)
    mask = torch.rand(2, 3, 5, 6) < 0.5
    mask[..., 0] = True
    out, w = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q.expand(2, 3, 5, 4), k.expand(2, 3, 6, 4), v, attn_mask=mask)
    assert w.shape == (2, 3, 5, 6)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    out, w = scaled_dot_product_attention(q, k, v, mask[0, 0])  # mask as small as the scores
    ref = F.scaled_dot_product_attention(q.expand(2, 3, 5, 4), k.expand(2, 3, 6, 4), v, attn_mask=mask[0, 0])
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)


def test_sdpa_is_causal_matches_torch_including_rectangular():
    for t_q, t_k in [(5, 5), (3, 6), (6, 3)]:
        q, k, v = torch.randn(2, t_q, 4), torch.randn(2, t_k, 4), torch.randn(2, t_k, 4)
        out, w = scaled_dot_product_attention(q, k, v, is_causal=True)
        torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))
        assert (w.triu(1) == 0).all()


def test_sdpa_is_causal_equals_causal_mask_and_combines():
    q = torch.randn(3, 6, 4)
    pad = padding_mask([6, 4, 2])[:, None, :]  # (B, 1, T_k)
    a, _ = scaled_dot_product_attention(q, q, q, is_causal=True)
    b, _ = scaled_dot_product_attention(q, q, q, causal_mask(6))
    torch.testing.assert_close(a, b)
    c, w = scaled_dot_product_attention(q, q, q, pad, is_causal=True)
    d, _ = scaled_dot_product_attention(q, q, q, pad & causal_mask(6))
    torch.testing.assert_close(c, d)
    assert (w[1, :, 4:] == 0).all() and (w.triu(1) == 0).all()


def test_scaling_is_by_sqrt_dk_and_softmax_over_keys():
    q, k, v = torch.randn(1, 3, 16), torch.randn(1, 5, 16), torch.randn(1, 5, 2)
    _, w = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(w, torch.softmax(q @ k.mT / 4.0, dim=-1))


def test_fully_masked_row_gives_zeros_not_nan_forward_and_backward():
    q = torch.randn(2, 4, 3, requires_grad=True)
    k = torch.randn(2, 5, 3, requires_grad=True)
    v = torch.randn(2, 5, 3, requires_grad=True)
    mask = torch.rand(2, 4, 5) < 0.5
    mask[:, :, 0] = True
    mask[0, 2] = False  # query 2 of sequence 0 may attend to nothing
    out, w = scaled_dot_product_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    assert (out[0, 2] == 0).all() and (w[0, 2] == 0).all()
    torch.testing.assert_close(w[0, [0, 1, 3]].sum(-1), torch.ones(3))
    # same choice as torch's SDPA (>= 2.5)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-6, rtol=1e-6)
    out.sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert (q.grad[0, 2] == 0).all()


def test_gradients_match_torch():
    q, k, v = (torch.randn(2, 3, n, 4, dtype=torch.float64, requires_grad=True) for n in (5, 6, 6))
    mask = torch.rand(5, 6) < 0.6
    mask[:, 0] = True
    ours = torch.autograd.grad(scaled_dot_product_attention(q, k, v, mask)[0].square().sum(), (q, k, v))
    ref = torch.autograd.grad(F.scaled_dot_product_attention(q, k, v, attn_mask=mask).square().sum(), (q, k, v))
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_dropout_keeps_returned_weights_and_drops_output():
    q = torch.randn(1, 50, 8)
    torch.manual_seed(0)
    out_d, w_d = scaled_dot_product_attention(q, q, q, dropout_p=0.5)
    out, w = scaled_dot_product_attention(q, q, q)
    torch.testing.assert_close(w_d, w)
    assert not torch.allclose(out_d, out)


@pytest.mark.parametrize(
    "args,err,match",
    [
        (((2, 5, 4), (2, 6, 3), (2, 6, 4)), ValueError, "same last dimension d_k"),
        (((2, 5, 4), (2, 6, 4), (2, 7, 4)), ValueError, "same number of keys"),
        (((2, 5, 4), (3, 6, 4), (3, 6, 4)), ValueError, "do not broadcast"),
        (((4,), (6, 4), (6, 4)), ValueError, "at least 2 dimensions"),
    ],
)
def test_sdpa_bad_shapes(args, err, match):
    with pytest.raises(err, match=match):
        scaled_dot_product_attention(*(torch.randn(s) for s in args))


def test_sdpa_bad_types_and_masks():
    q = torch.randn(2, 5, 4)
    with pytest.raises(TypeError, match=r"q must be a \(\.\.\., T, D\) torch.Tensor"):
        scaled_dot_product_attention(q.numpy(), q, q)
    with pytest.raises(TypeError, match="floating-point"):
        scaled_dot_product_attention(q.long(), q.long(), q.long())
    with pytest.raises(TypeError, match="share one dtype"):
        scaled_dot_product_attention(q, q.double(), q)
    with pytest.raises(TypeError, match="torch.bool"):
        scaled_dot_product_attention(q, q, q, torch.zeros(5, 5))  # additive float mask
    with pytest.raises(ValueError, match=r"mask of shape \(4, 5\) does not broadcast"):
        scaled_dot_product_attention(q, q, q, torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not broadcast"):
        scaled_dot_product_attention(q, q, q, torch.ones(3, 5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not broadcast"):  # a mask may not grow the batch
        scaled_dot_product_attention(q, q, q, torch.ones(7, 2, 5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="dropout_p"):
        scaled_dot_product_attention(q, q, q, dropout_p=1.0)


# ------------------------------------------------------------------ masks
def test_causal_mask():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m.shape == (4, 4)
    assert torch.equal(m, ~torch.triu(torch.ones(4, 4, dtype=torch.bool), 1))
    # torch's boolean is_causal mask is the same, and nn.Transformer's float mask is its complement
    assert torch.equal(m, nn.Transformer.generate_square_subsequent_mask(4) == 0)
    for bad, err in [(0, ValueError), (2.0, TypeError), (True, TypeError)]:
        with pytest.raises(err, match="causal_mask: n"):
            causal_mask(bad)


def test_padding_mask():
    m = padding_mask([3, 1, 4])
    assert torch.equal(m, torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool))
    assert padding_mask(torch.tensor([2, 2]), max_len=5).shape == (2, 5)
    with pytest.raises(ValueError, match="exceeds max_len"):
        padding_mask([3, 6], max_len=5)
    with pytest.raises(ValueError, match=">= 0"):
        padding_mask([3, -1])
    with pytest.raises(TypeError, match=r"lengths\[0\] must be an int, got float"):
        padding_mask([1.5, 2])
    with pytest.raises(TypeError, match="max_len must be an int"):
        padding_mask([1, 2], max_len=2.0)
    with pytest.raises(TypeError, match="integer tensor"):
        padding_mask(torch.tensor([1.0, 2.0]))


def test_padding_mask_matches_torch_key_padding_mask():
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    ours = MultiHeadAttention.from_torch(ref)
    x = torch.randn(3, 5, 8)
    keep = padding_mask([5, 3, 1])  # True = real token
    r_out, r_w = ref(x, x, x, key_padding_mask=~keep, average_attn_weights=False)
    o_out, o_w = ours(x, x, x, mask=keep[:, None, None, :])
    torch.testing.assert_close(o_out, r_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(o_w, r_w, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ heads
@settings(max_examples=30, deadline=None)
@given(
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    t=st.integers(1, 6),
    h=st.integers(1, 4),
    d_h=st.integers(1, 5),
)
def test_split_merge_roundtrip_and_layout(lead, t, h, d_h):
    x = torch.randn(*lead, t, h * d_h)
    s = split_heads(x, h)
    assert s.shape == (*lead, h, t, d_h)
    for j in range(h):  # head j = feature slice j of every token
        assert torch.equal(s[..., j, :, :], x[..., j * d_h : (j + 1) * d_h])
    assert torch.equal(merge_heads(s), x)


def test_split_heads_errors():
    with pytest.raises(ValueError, match="not divisible by n_heads=3"):
        split_heads(torch.randn(2, 5, 8), 3)
    with pytest.raises(ValueError, match="n_heads"):
        split_heads(torch.randn(2, 5, 8), 0)
    with pytest.raises(TypeError):
        split_heads([[1.0]], 1)
    with pytest.raises(ValueError, match=r"\(\.\.\., h, T, d_h\)"):
        merge_heads(torch.randn(5, 8))


# ------------------------------------------------------------------ multi-head attention
def _pair(d=16, h=4, kdim=None, vdim=None, bias=True, dtype=torch.float32, device="cpu", seed=0):
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(d, h, batch_first=True, kdim=kdim, vdim=vdim, bias=bias).to(device, dtype).eval()
    if bias:  # torch starts biases at zero; make them count
        with torch.no_grad():
            ref.in_proj_bias.normal_()
            ref.out_proj.bias.normal_()
    return ref, MultiHeadAttention.from_torch(ref)


def _torch_mask(mask, h):
    """Our (B, T_q, T_k) / (T_q, T_k) True = may attend -> torch's attn_mask, True = blocked."""
    if mask is None or mask.dim() == 2:
        return None if mask is None else ~mask
    return (~mask).repeat_interleave(h, dim=0)  # torch wants (B*h, T_q, T_k), batch-major


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["self", "self-causal", "cross", "cross-batched-mask"])
def test_mha_matches_torch(kind, dtype, device):
    B, T_q, T_k, d, h = 3, 5, 7, 16, 4
    ref, ours = _pair(d, h, dtype=dtype, device=device)
    x = torch.randn(B, T_q, d, dtype=dtype, device=device)
    mem = torch.randn(B, T_k, d, dtype=dtype, device=device)
    mask = None
    if kind == "self":
        args = (x, x, x)
    elif kind == "self-causal":
        args, mask = (x, x, x), causal_mask(T_q, device=device)
    elif kind == "cross":
        args = (x, mem, mem)
    else:
        args = (x, mem, mem)
        mask = torch.rand(B, T_q, T_k, device=device) < 0.6
        mask[..., 0] = True
    r_out, r_w = ref(*args, attn_mask=_torch_mask(mask, h), average_attn_weights=False)
    o_out, o_w = ours(*args, mask=mask)
    assert o_out.shape == (B, T_q, d) and o_w.shape == r_w.shape
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(o_out, r_out, atol=tol, rtol=tol)
    torch.testing.assert_close(o_w, r_w, atol=tol, rtol=tol)


def test_mha_per_head_mask_and_kdim_vdim_and_no_bias():
    B, T_q, T_k, d, h = 2, 4, 6, 12, 3
    ref, ours = _pair(d, h, kdim=5, vdim=7, bias=False)
    x, key, val = torch.randn(B, T_q, d), torch.randn(B, T_k, 5), torch.randn(B, T_k, 7)
    mask = torch.rand(B, h, T_q, T_k) < 0.6
    mask[..., 0] = True
    r_out, r_w = ref(x, key, val, attn_mask=~mask.reshape(B * h, T_q, T_k), average_attn_weights=False)
    o_out, o_w = ours(x, key, val, mask=mask)
    torch.testing.assert_close(o_out, r_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(o_w, r_w, atol=1e-5, rtol=1e-5)
    assert ours.q_proj.bias is None


def test_mha_from_torch_copies_not_shares_and_keeps_gradients_flowing():
    ref, ours = _pair()
    with torch.no_grad():
        ours.q_proj.weight.zero_()
    assert ref.in_proj_weight.abs().sum() > 0
    x = torch.randn(2, 3, 16)
    ours(x, x, x)[0].sum().backward()
    assert all(p.grad is not None for p in ours.parameters())


def test_mha_dropout_train_vs_eval():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, dropout=0.5)
    x = torch.randn(2, 10, 16)
    a = mha(x, x, x)[0]
    b = mha(x, x, x)[0]
    assert not torch.allclose(a, b)  # training: dropout differs between calls
    mha.eval()
    torch.testing.assert_close(mha(x, x, x)[0], mha(x, x, x)[0])


def test_mha_bad_input():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="n_heads"):
        MultiHeadAttention(8, 0)
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 3, 8)
    with pytest.raises(ValueError, match="query must have last dimension 8"):
        mha(torch.randn(2, 3, 6), x, x)
    with pytest.raises(ValueError, match="same length T_k"):
        mha(x, torch.randn(2, 4, 8), torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="does not broadcast"):
        mha(x, x, x, mask=torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="torch.bool"):
        mha(x, x, x, mask=torch.zeros(3, 3))
    with pytest.raises(TypeError, match="nn.MultiheadAttention"):
        MultiHeadAttention.from_torch(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="add_bias_kv"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2, add_bias_kv=True))
