"""The checks behind notebook 01's exercises: softmax attention, the decoder's mask, heads, multi-head attention.

Each test cell shows a hand-worked example (its numbers written in the cell) checked with
`*_example` or the `*_mistakes` of this module, then calls a `*_properties` check; its hidden
part calls `check_*`. The references are `course_utils.attention`'s functions and module;
the catalogues of known mistakes live here, so the student's copy shows no answer. Hidden
inputs differ from the visible ones (shapes, batch sizes, dtypes, masks).

>>> from course_utils.attention import causal_mask, padding_mask
>>> check_causal_padding_mask(lambda lengths, T: causal_mask(T) & padding_mask(lengths, T)[:, None, :])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_utils.attention import MultiHeadAttention, merge_heads, scaled_dot_product_attention, split_heads
from course_utils.tools.grading import (
    call,
    expect,
    expect_close,
    expect_dtype,
    expect_equal,
    expect_shape,
    forbid,
)

__all__ = [
    "attention_mistakes",
    "attention_example",
    "softmax_attention_properties",
    "check_softmax_attention",
    "causal_padding_mask_mistakes",
    "causal_padding_mask_properties",
    "check_causal_padding_mask",
    "split_mistakes",
    "merge_mistakes",
    "heads_properties",
    "check_heads",
    "example_mha",
    "mha_example",
    "multi_head_attention_properties",
    "check_multi_head_attention",
]

ATTENTION_HELPERS = [scaled_dot_product_attention, F.scaled_dot_product_attention]  # "build it from tensor operations"
HEAD_HELPERS = [split_heads, merge_heads]
NEG_INF = float("-inf")


def _pair(result, name: str) -> tuple:
    expect(isinstance(result, tuple) and len(result) == 2, f"{name} should return a tuple (output, weights).")
    return result


# ---------------------------------------------------------------------------------------------
# exercise: softmax attention
# ---------------------------------------------------------------------------------------------
def attention_mistakes(q, k, v, mask=None) -> tuple[dict, dict]:
    """({mistake: its weights}, {mistake: its output}) for the usual wrong softmax attentions on these inputs."""
    d = q.shape[-1]
    raw = q @ k.transpose(-2, -1)  # (..., T_q, T_k)

    def blocked(s):
        return s if mask is None else s.masked_fill(~mask, NEG_INF)

    scaled = blocked(raw / math.sqrt(d))
    weights = {
        "the softmax runs over the queries (dim=-2); it must run over the keys (dim=-1)": scaled.softmax(dim=-2),
        "the scores are not divided by sqrt(d_k)": blocked(raw).softmax(dim=-1),
        "the scores are divided by d_k instead of sqrt(d_k)": blocked(raw / d).softmax(dim=-1),
        "the softmax is not numerically stable: subtract each row's maximum before exp (or use torch.softmax)": (
            scaled.exp() / scaled.exp().sum(-1, keepdim=True)
        ),
    }
    if mask is not None:
        weights[
            "the mask is applied after the softmax (rows no longer sum to 1); set blocked scores to -inf before it"
        ] = (raw / math.sqrt(d)).softmax(dim=-1).masked_fill(~mask, 0.0)
        weights["the mask is inverted: True means *may attend*, so block where the mask is False"] = (
            (raw / math.sqrt(d)).masked_fill(mask, NEG_INF).softmax(dim=-1)
        )
        weights["blocked scores are set to 0, which still gets weight exp(0) = 1: set them to -inf"] = (
            (raw / math.sqrt(d)).masked_fill(~mask, 0.0).softmax(dim=-1)
        )
    outputs = {
        "the output is the scores times v; multiply the weights (after the softmax) by v": (
            scaled.masked_fill(scaled == NEG_INF, 0.0) @ v
        ),
    }
    return weights, outputs


def attention_example(fn, q, k, v, mask, output, weights, what: str) -> None:
    """fn(q, k, v, mask) gives these (output, weights), worked by hand in the test cell; known mistakes named."""
    out, w = _pair(call(fn, q, k, v, mask, what="softmax_attention", forbidden=ATTENTION_HELPERS), "softmax_attention")
    wrong_w, wrong_out = attention_mistakes(q, k, v, mask)
    expect_close(w, weights, f"the weight matrix {what}", mistakes=wrong_w)
    expect_close(out, output, f"the output {what}", mistakes=wrong_out)


def _check_attention(fn, q, k, v, mask, on: str) -> None:
    out, w = _pair(call(fn, q, k, v, mask, what="softmax_attention", forbidden=ATTENTION_HELPERS), "softmax_attention")
    ref_out, ref_w = scaled_dot_product_attention(q, k, v, mask)
    wrong_w, wrong_out = attention_mistakes(q, k, v, mask)
    expect_close(w, ref_w, "the weight matrix", mistakes=wrong_w, on=on)
    expect_dtype(w, q.dtype, f"the weight matrix (on {on})")
    expect_close(out, ref_out, "the output", mistakes=wrong_out, on=on)
    expect_dtype(out, q.dtype, f"the output (on {on})")


def softmax_attention_properties(fn) -> None:
    """Visible checks on a random batch: shapes, weights >= 0 with rows summing to 1, blocked keys get exactly 0,
    output = weights @ v, and shuffling the keys (with their values) leaves the output unchanged."""
    g = torch.Generator().manual_seed(20)
    q, k, v = torch.randn(2, 4, 8, generator=g), torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 3, generator=g)
    mask = torch.rand(2, 4, 5, generator=g) < 0.6
    mask[..., 0] = True  # every query keeps a key
    for m, name in ((None, "without a mask"), (mask, "with a mask")):
        out, w = _pair(call(fn, q, k, v, m, what="softmax_attention", forbidden=ATTENTION_HELPERS), "softmax_attention")
        expect_shape(w, (2, 4, 5), f"the weight matrix {name} for q (2, 4, 8), k (2, 5, 8), v (2, 5, 3)")
        expect_shape(out, (2, 4, 3), f"the output {name} for q (2, 4, 8), k (2, 5, 8), v (2, 5, 3)")
        expect(bool(torch.isfinite(w).all() and (w >= 0).all()), f"the weights {name} should be finite and >= 0.")
        expect_close(w.sum(-1), torch.ones(2, 4), f"the sum of each row of the weights {name}")
        expect_close(out, w @ v, f"the output {name}, which should be the weights times v")
    expect(bool((w[~mask] == 0).all()), "a blocked key (mask False) should get exactly zero weight.")
    perm = torch.tensor([3, 0, 4, 2, 1])
    shuffled, _ = _pair(call(fn, q, k[:, perm], v[:, perm], None, what="softmax_attention"), "softmax_attention")
    unshuffled, _ = _pair(call(fn, q, k, v, None, what="softmax_attention"), "softmax_attention")
    expect_close(shuffled, unshuffled, "the output after shuffling the keys together with their values", atol=1e-5)


def check_softmax_attention(fn) -> None:
    """Hidden checks: heads and float64, a shared causal mask, 2-D inputs, rows of very different scales,
    a padding mask with a head dimension, a single key."""
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(3, 2, t, 16, generator=g, dtype=torch.float64) for t in (6, 7, 7))
    _check_attention(fn, q, k, v, None, "float64 inputs with a batch and heads, T_q = 6, T_k = 7")
    causal = torch.ones(6, 7, dtype=torch.bool).tril()
    _check_attention(fn, q, k, v, causal, "one (T_q, T_k) causal mask shared by the whole batch")
    q2, k2, v2 = torch.randn(1, 5, generator=g), torch.randn(9, 5, generator=g), torch.randn(9, 2, generator=g)
    _check_attention(fn, q2, k2, v2, None, "2-D inputs with a single query")
    q3, k3, v3 = torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 2, generator=g)
    q3[1] *= 300.0  # scores in the hundreds for the second sequence only: exp overflows without the max trick
    _check_attention(fn, q3, k3, v3, None, "rows of very different scales")
    lengths = torch.tensor([5, 2, 3])
    pad = (torch.arange(5) < lengths[:, None])[:, None, None, :]  # (B, 1, 1, T_k)
    q4, k4, v4 = (torch.randn(3, 2, t, 4, generator=g) for t in (3, 5, 5))
    _check_attention(fn, q4, k4, v4, pad, "a padding mask of shape (B, 1, 1, T_k)")
    _check_attention(fn, q4, k4[..., :1, :], v4[..., :1, :], None, "a single key")


# ---------------------------------------------------------------------------------------------
# exercise: the decoder's mask
# ---------------------------------------------------------------------------------------------
def causal_padding_mask_mistakes(lengths, T: int) -> dict:
    """{mistake: its mask} for the usual wrong causal + padding masks."""
    tri = torch.ones(T, T, dtype=torch.bool)
    real = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    B = len(lengths)
    return {
        "True marks the blocked positions (PyTorch's nn.MultiheadAttention convention); here True = may attend": ~(
            tri.tril()[None] & real[:, None, :]
        ),
        "the future is allowed and the past blocked: keep j <= i, the lower triangle (tril)": tri.triu()[None]
        & real[:, None, :],
        "a query may not attend to itself: the diagonal should be True (j <= i, not j < i)": tri.tril(-1)[None]
        & real[:, None, :],
        "the padding blocks queries (rows) instead of keys (columns)": tri.tril()[None] & real[:, :, None],
        "the padding is ignored: also block keys j >= lengths[b]": tri.tril()[None].expand(B, T, T),
        "the causal part is missing: also block keys j > i": real[:, None, :].expand(B, T, T),
    }


def _check_mask(fn, lengths, T: int, on: str) -> None:
    m = call(fn, list(lengths), T, what="causal_padding_mask")
    expect_dtype(m, torch.bool, f"the mask (on {on})")
    ref = (
        torch.ones(T, T, dtype=torch.bool).tril()[None]
        & (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None])[:, None, :]
    )
    expect_equal(m, ref, "the mask", mistakes=causal_padding_mask_mistakes(lengths, T), on=on)


def causal_padding_mask_properties(fn) -> None:
    """Visible checks for lengths [2, 4, 1] and T = 5: dtype bool, shape (B, T, T), nothing above the diagonal,
    no padded key may be attended to, every real token may attend to itself."""
    lengths, T = [2, 4, 1], 5
    m = call(fn, lengths, T, what="causal_padding_mask")
    expect_dtype(m, torch.bool, "causal_padding_mask([2, 4, 1], 5)")
    expect_shape(m, (3, T, T), "causal_padding_mask([2, 4, 1], 5)")
    expect(
        not bool(m.triu(1).any()),
        "a query may never attend to a later key (j > i): the mask has True above the diagonal.",
    )
    for b, n in enumerate(lengths):
        expect(
            not bool(m[b, :, n:].any()), f"sequence {b} has length {n}: its padded keys (columns >= {n}) must be False."
        )
        expect(
            bool(m[b].diagonal()[:n].all()), f"in sequence {b}, every real token should be allowed to attend to itself."
        )


def check_causal_padding_mask(fn) -> None:
    """Hidden checks: sequences of different lengths, no padding, T longer than every sequence, a single token."""
    _check_mask(fn, [1, 5, 3], 5, "a batch of 3 sequences of different lengths")
    _check_mask(fn, [7], 7, "a single sequence with no padding")
    _check_mask(fn, [2, 6], 8, "sequences that are all shorter than T")
    _check_mask(fn, [1], 1, "a single token")


# ---------------------------------------------------------------------------------------------
# exercise: splitting and merging heads
# ---------------------------------------------------------------------------------------------
def split_mistakes(x, n_heads: int) -> dict:
    """{mistake: its output} for wrong ways to split (B, T, D) into (B, h, T, D/h)."""
    B, T, D = x.shape
    d_h = D // n_heads
    return {
        "reshaping straight to (B, h, T, D/h) mixes tokens into heads: reshape to (B, T, h, D/h), then transpose": (
            x.reshape(B, n_heads, T, d_h)
        ),
        "the features are dealt out round-robin (head j gets features j, j+h, ...): reshape to (B, T, h, D/h), "
        "not (B, T, D/h, h)": x.reshape(B, T, d_h, n_heads).permute(0, 3, 1, 2),
    }


def merge_mistakes(y) -> dict:
    """{mistake: its output} for wrong ways to merge (B, h, T, d_h) into (B, T, h d_h)."""
    B, h, T, d_h = y.shape
    return {
        "the heads are merged without moving the head dimension back: transpose to (B, T, h, d_h) before reshaping": (
            y.reshape(B, T, h * d_h)
        ),
        "the heads are interleaved feature by feature: transpose (B, h, T, d_h) -> (B, T, h, d_h), "
        "not (B, T, d_h, h)": y.permute(0, 2, 3, 1).reshape(B, T, h * d_h),
    }


def heads_properties(split, merge) -> None:
    """Visible checks on a random (2, 5, 12) tensor and 3 heads: shapes, dtype, merge(split(x)) == x."""
    x = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(30))
    s = call(split, x, 3, what="split_heads_", forbidden=HEAD_HELPERS)
    expect_shape(s, (2, 3, 5, 4), "split_heads_ of a (2, 5, 12) tensor into 3 heads")
    expect_dtype(s, x.dtype, "split_heads_ of a float32 tensor")
    m = call(merge, s, what="merge_heads_", forbidden=HEAD_HELPERS)
    expect_shape(m, (2, 5, 12), "merge_heads_ of a (2, 3, 5, 4) tensor")
    expect_equal(m, x, "merge_heads_(split_heads_(x, 3)), which should give x back")


def _check_split_merge(split, merge, B: int, T: int, D: int, h: int, on: str, dtype=torch.float32) -> None:
    x = torch.randn(B, T, D, generator=torch.Generator().manual_seed(B * 1000 + T * 100 + D + h)).to(dtype)
    ref = split_heads(x, h)
    s = call(split, x, h, what="split_heads_", forbidden=HEAD_HELPERS)
    expect_dtype(s, dtype, f"split_heads_ (on {on})")
    expect_equal(s, ref, "split_heads_", mistakes=split_mistakes(x, h), on=on)
    m = call(merge, ref.contiguous(), what="merge_heads_", forbidden=HEAD_HELPERS)
    expect_dtype(m, dtype, f"merge_heads_ (on {on})")
    expect_equal(m, x, "merge_heads_", mistakes=merge_mistakes(ref), on=on)


def check_heads(split, merge) -> None:
    """Hidden checks: batch of 1 and of 3, odd sizes, one head, one token, float64."""
    _check_split_merge(split, merge, 1, 5, 12, 3, "one sequence of 5 tokens, 3 heads")
    _check_split_merge(split, merge, 3, 4, 16, 4, "a batch of 3 sequences, 4 heads")
    _check_split_merge(split, merge, 2, 7, 6, 2, "float64 inputs of odd length", dtype=torch.float64)
    _check_split_merge(split, merge, 2, 2, 6, 1, "a single head")
    _check_split_merge(split, merge, 2, 1, 8, 8, "one token, heads of width 1")


# ---------------------------------------------------------------------------------------------
# exercise: multi-head attention, assembled
# ---------------------------------------------------------------------------------------------
def _call_mha(fn, mha, query, key, value, mask):
    with (
        torch.no_grad(),
        forbid(fn, [MultiHeadAttention.forward], reason="this exercise asks you to write mha(...) yourself"),
    ):  # no autograd graph: outputs compare (and copy) as plain tensors
        result = call(
            fn, mha, query, key, value, mask, what="multi_head_attention", forbidden=ATTENTION_HELPERS + HEAD_HELPERS
        )
    return _pair(result, "multi_head_attention")


def example_mha(n_heads: int, W_q, W_k, W_v, W_o) -> MultiHeadAttention:
    """A MultiHeadAttention with these (d_model, d_model) weights and zero biases, for a hand-worked example."""
    mha = MultiHeadAttention(W_q.shape[0], n_heads)
    with torch.no_grad():
        for lin, w in ((mha.q_proj, W_q), (mha.k_proj, W_k), (mha.v_proj, W_v), (mha.out_proj, W_o)):
            lin.weight.copy_(w)
            lin.bias.zero_()
    return mha.eval()


def _random_mha(d_model: int, n_heads: int, seed: int, dtype=torch.float32) -> MultiHeadAttention:
    """A MultiHeadAttention with random weights and biases from `seed`; the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        mha = MultiHeadAttention(d_model, n_heads).to(dtype)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in mha.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype) / math.sqrt(d_model))
    return mha.eval()


def _mha_variant(
    mha, query, key, value, mask, *, straight=False, d_scale=None, head_dim=True, transpose=True, w_o=True
):
    """MultiHeadAttention's forward with one step done wrong (the defaults do every step right)."""
    h = mha.n_heads
    B, T_q, D = query.shape

    def split(x):
        T = x.shape[1]
        return x.reshape(B, h, T, D // h) if straight else x.reshape(B, T, h, D // h).transpose(1, 2)

    q, k, v = split(mha.q_proj(query)), split(mha.k_proj(key)), split(mha.v_proj(value))
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_scale or D // h)  # (B, h, T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~(mask[:, None] if head_dim and mask.dim() == 3 else mask), NEG_INF)
    weights = scores.softmax(dim=-1)
    out = weights @ v  # (B, h, T_q, d_head)
    out = out.transpose(1, 2).reshape(B, T_q, D) if transpose else out.reshape(B, T_q, D)
    return (mha.out_proj(out) if w_o else out), weights


def _mha_mistakes(mha, query, key, value, mask) -> tuple[dict, dict]:
    """({mistake: its weights}, {mistake: its output}) for the usual ways to get multi-head attention wrong."""
    with torch.no_grad():
        args = (mha, query, key, value, mask)
        weights = {
            "the heads are split by reshaping straight to (B, h, T, d_head), which mixes tokens into heads: "
            "reshape to (B, T, h, d_head), then transpose": _mha_variant(*args, straight=True)[1],
            "the scores are divided by sqrt(d_model); each head works in d_head = d_model / n_heads dimensions, "
            "so divide by sqrt(d_head)": _mha_variant(*args, d_scale=mha.d_model)[1],
        }
        if mask is not None and mask.dim() == 3 and mask.shape[0] == mha.n_heads:
            weights[
                "the (B, T_q, T_k) mask is lined up with the heads instead of the batch: "
                "give it a head dimension first (mask[:, None])"
            ] = _mha_variant(*args, head_dim=False)[1]
        outputs = {
            "the merged heads are returned without W_O: finish with mha.out_proj": _mha_variant(*args, w_o=False)[0],
            "the heads are merged without moving the head dimension back: transpose (B, h, T, d_head) -> "
            "(B, T, h, d_head) before reshaping": _mha_variant(*args, transpose=False)[0],
        }
    return weights, outputs


def mha_example(fn, mha, query, key, value, mask, output, weights, what: str) -> None:
    """fn(mha, query, key, value, mask) gives these (output, weights), worked by hand in the test cell."""
    out, w = _call_mha(fn, mha, query, key, value, mask)
    wrong_w, wrong_out = _mha_mistakes(mha, query, key, value, mask)
    expect_close(w, weights, f"the weight matrix {what}", mistakes=wrong_w)
    expect_close(out, output, f"the output {what}", mistakes=wrong_out)


def multi_head_attention_properties(fn) -> None:
    """Visible checks on random weights (d_model = 8, 2 heads), a batch of 3 and a (T_q, T_k) mask: shapes,
    weights per head summing to 1, blocked keys at exactly 0, and keys shuffled with their values change nothing."""
    mha = _random_mha(8, 2, seed=40)
    g = torch.Generator().manual_seed(41)
    query, memory = torch.randn(3, 4, 8, generator=g), torch.randn(3, 6, 8, generator=g)
    mask = torch.rand(4, 6, generator=g) < 0.5
    mask[:, 0] = True
    out, w = _call_mha(fn, mha, query, memory, memory, mask)
    expect_shape(out, (3, 4, 8), "the output for a query (3, 4, 8) and keys (3, 6, 8)")
    expect_shape(
        w, (3, 2, 4, 6), "the weight matrix (B, h, T_q, T_k) for a query (3, 4, 8), keys (3, 6, 8) and 2 heads"
    )
    expect_close(w.sum(-1), torch.ones(3, 2, 4), "the sum of each row of the weights, in every head")
    expect(
        bool((w[:, :, ~mask] == 0).all()), "a blocked key (mask False) should get exactly zero weight in every head."
    )
    perm = torch.tensor([2, 5, 0, 1, 4, 3])
    shuffled, _ = _call_mha(fn, mha, query, memory[:, perm], memory[:, perm], mask[:, perm])
    expect_close(shuffled, out, "the output after shuffling the keys together with their values (and the mask)")


def _check_mha(fn, mha, query, key, value, mask, on: str) -> None:
    out, w = _call_mha(fn, mha, query, key, value, mask)
    with torch.no_grad():
        ref_out, ref_w = mha(query, key, value, mask)
    wrong_w, wrong_out = _mha_mistakes(mha, query, key, value, mask)
    expect_close(w, ref_w, "the weight matrix", mistakes=wrong_w, on=on)
    expect_close(out, ref_out, "the output", mistakes=wrong_out, on=on)
    expect_dtype(out, query.dtype, f"the output (on {on})")


def check_multi_head_attention(fn) -> None:
    """Hidden checks against course_utils.attention.MultiHeadAttention on random weights: self-attention in float64,
    a (B, T_q, T_k) padding mask, cross-attention with a (T_q, T_k) mask, one token and one head, batch != heads."""
    g = torch.Generator().manual_seed(2)
    mha = _random_mha(12, 3, seed=3, dtype=torch.float64)
    x = torch.randn(3, 4, 12, generator=g, dtype=torch.float64)
    _check_mha(fn, mha, x, x, x, None, "self-attention in float64, a batch of 3, 3 heads")
    mha = _random_mha(8, 2, seed=4)
    query, memory = torch.randn(2, 3, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    pad = (torch.arange(5) < torch.tensor([5, 2])[:, None])[:, None, :].repeat(1, 3, 1)  # (B, T_q, T_k)
    _check_mha(fn, mha, query, memory, memory, pad, "a (B, T_q, T_k) padding mask")
    mha = _random_mha(16, 4, seed=5)
    query, memory = torch.randn(2, 4, 16, generator=g), torch.randn(2, 6, 16, generator=g)
    _check_mha(
        fn, mha, query, memory, memory, torch.ones(4, 6, dtype=torch.bool).tril(), "cross-attention, a (T_q, T_k) mask"
    )
    mha = _random_mha(5, 1, seed=6)
    one = torch.randn(1, 1, 5, generator=g)
    _check_mha(fn, mha, one, one, one, None, "one token, one head, d_model = 5")
    mha = _random_mha(8, 2, seed=7)
    query, memory = torch.randn(3, 2, 8, generator=g), torch.randn(3, 4, 8, generator=g)
    pad = (torch.arange(4) < torch.tensor([1, 4, 3])[:, None])[:, None, :].repeat(1, 2, 1)
    _check_mha(fn, mha, query, memory, memory, pad, "a batch of 3 with a (B, T_q, T_k) padding mask, 2 heads")
