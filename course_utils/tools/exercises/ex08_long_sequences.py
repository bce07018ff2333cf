"""Notebook 08's graded checks: the sliding-window mask, the online-softmax update, tiled attention, the KV cache.

The visible part of each test cell works one example by hand and calls a `..._properties`
check from here (shapes, dtypes, invariances); the hidden part calls `check_...`: the
course's reference on inputs of several kinds, with the known mistakes named where the
input tells them apart. Messages describe an input ("a causal mask, 9 queries and keys in
tiles of 4 x 3"), never print it.

Tiled attention must never hold more than one (block_q, block_k) tile of scores. Its checks
pass the inputs as `_Watched` tensors, a subclass that records the size of every tensor
computed from them, so an answer that forms the whole score matrix fails even when its
numbers are right.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_utils import attention, flash, kvcache
from course_utils.tools.grading import (
    GradingError,
    call,
    expect,
    expect_close,
    expect_dtype,
    expect_equal,
    expect_shape,
)

__all__ = [
    "window_mistakes",
    "expect_boolean_mask",
    "window_mask_properties",
    "check_window_mask",
    "expect_update",
    "online_softmax_properties",
    "check_online_softmax_update",
    "expect_tiled_attention",
    "tiled_attention_properties",
    "check_tiled_attention",
    "append_kv_properties",
    "check_append_kv",
]


# ---- Exercise 1: the sliding-window mask ------------------------------------------------------


def window_mistakes(n: int, window: int) -> dict[str, torch.Tensor]:
    """The (n, n) masks of the usual mistakes: off by one either way, a window on one side only."""
    diff = torch.arange(n)[:, None] - torch.arange(n)[None, :]  # (n, n): i - j
    strict, wide = diff.abs() < window, diff.abs() <= window + 1
    back, ahead = (diff >= 0) & (diff <= window), (diff <= 0) & (diff >= -window)
    return {
        "an off-by-one: the window must include keys exactly `window` away (|i - j| <= window, not <)": strict,
        "an off-by-one: the window is one key too wide on each side (use |i - j| <= window)": wide,
        "a window that only looks back (a causal window); BigBird's window is symmetric, use |i - j|": back,
        "a window that only looks ahead; it must be symmetric, use the absolute value |i - j|": ahead,
    }


def _window_reference(n: int, window: int) -> torch.Tensor:
    """(n, n) True where |i - j| <= window, written as plainly as possible."""
    return torch.tensor([[abs(i - j) <= window for j in range(n)] for i in range(n)])


def expect_boolean_mask(m, n: int, on: str) -> None:
    """A boolean (n, n) tensor (True = may attend)."""
    expect(
        isinstance(m, torch.Tensor) and m.dtype == torch.bool,
        "window_mask should return a boolean tensor (True = may attend), e.g. from a comparison like `<=`.",
    )
    expect_shape(m, (n, n), f"the mask (on {on})")


def window_mask_properties(window_mask) -> None:
    """A boolean (n, n) mask, symmetric, True on the diagonal; window 0 leaves only the diagonal."""
    m = call(window_mask, 7, 2)
    expect_boolean_mask(m, 7, "7 tokens")
    expect(bool(m.diagonal().all()), "every token may attend to itself: the diagonal of the mask must be True.")
    expect(torch.equal(m, m.T), "the window is symmetric (a token sees `window` keys on each side): mask == mask.T.")
    expect_equal(call(window_mask, 3, 0), torch.eye(3, dtype=torch.bool), "the mask with window 0 (only the diagonal)")


def check_window_mask(window_mask) -> None:
    """window_mask against |i - j| <= window on windows narrower than, as wide as and wider than the sequence."""
    cases = [
        (10, 3, "a 10-token sequence with a window of 3"),
        (5, 0, "a window of 0"),
        (4, 7, "a window wider than the sequence"),
        (1, 2, "a single token"),
    ]
    for n, w, on in cases:
        m = call(window_mask, n, w)
        expect_boolean_mask(m, n, on)
        expect_equal(m, _window_reference(n, w), "the mask", mistakes=window_mistakes(n, w), on=on)


# ---- Exercise 2: the online-softmax update ----------------------------------------------------

UPDATE_MISTAKES = {  # kind -> (the outputs it changes, what the student did)
    "tile max": ("m", "the max of the new tile only; keep the larger of the old m and the tile's max"),
    "sum": ("l", "forgot to rescale the running sum: multiply the old l by exp(m_old - m_new) when the max changes"),
    "inverted": (
        "l acc",
        "the rescale factor is inverted: old terms shrink by exp(m_old - m_new), not exp(m_new - m_old)",
    ),
    "no max": ("l acc", "no max subtracted inside exp: use exp(scores - m_new), or large scores overflow"),
    "acc": ("acc", "forgot to rescale acc: multiply the old acc by the same exp(m_old - m_new) as l"),
}


def _wrong_update(kind: str):
    """The update with one mistake of UPDATE_MISTAKES."""

    def update(m, l, acc, s, v):
        m_new = s.amax(-1, keepdim=True) if kind == "tile max" else torch.maximum(m, s.amax(-1, keepdim=True))
        scale = torch.exp(m_new - m) if kind == "inverted" else torch.exp(m - m_new)
        if kind == "no max":
            p, scale = torch.exp(s), torch.ones_like(m)
        else:
            p = torch.exp(s - m_new)
        l_new = (l if kind == "sum" else l * scale) + p.sum(-1, keepdim=True)
        acc_new = (acc if kind == "acc" else acc * scale) + p @ v
        return m_new, l_new, acc_new

    return update


def _step(update, *args):
    out = call(update, *args, what="online_softmax_update")
    if not (isinstance(out, tuple) and len(out) == 3):
        raise GradingError("online_softmax_update should return a tuple (m, l, acc) of three tensors.")
    return out


def _fold(update, scores, values, tile, graded=True):
    """Run an update over the key tiles from the empty state (m = -inf, l = 0, acc = 0) -> final (m, l, acc)."""
    T = scores.shape[0]
    state = (
        torch.full((T, 1), float("-inf"), dtype=scores.dtype),
        torch.zeros(T, 1, dtype=scores.dtype),
        torch.zeros(T, values.shape[1], dtype=scores.dtype),
    )
    for j in range(0, scores.shape[1], tile):
        args = (*state, scores[:, j : j + tile], values[j : j + tile])
        state = _step(update, *args) if graded else update(*args)
    return state


def _compare_states(got, ref, wrongs, on: str) -> None:
    for i, name in enumerate(("m", "l", "acc")):
        what = {"m": "the running max m", "l": "the running sum l", "acc": "the running output acc"}[name]
        expect_shape(got[i], ref[i].shape, f"{what} (on {on})")
        expect_dtype(got[i], ref[i].dtype, f"{what} (on {on})")
        mistakes = {msg: wrongs[kind][i] for kind, (parts, msg) in UPDATE_MISTAKES.items() if name in parts.split()}
        expect_close(got[i], ref[i], what, mistakes=mistakes, on=on)


def expect_update(update, inputs: tuple, expected: tuple, on: str) -> None:
    """One step on `inputs` (m, l, acc, scores, v_tile) must give `expected` (m, l, acc); mistakes named."""
    got = _step(update, *inputs)
    _compare_states(got, expected, {kind: _wrong_update(kind)(*inputs) for kind in UPDATE_MISTAKES}, on)


def online_softmax_properties(update) -> None:
    """After the last tile m is each row's largest score and l >= 1; acc / l does not depend on the tile size."""
    scores = torch.tensor([[2.0, -1.0, 0.5, 3.0, 1.0], [0.0, 4.0, -2.0, 1.0, 1.5], [1.0, 1.0, 1.0, 1.0, 1.0]])
    values = torch.arange(10.0).reshape(5, 2) / 10
    outs = []
    for tile in (1, 2, 5):
        m, l, acc = _fold(update, scores, values, tile)
        for x, shape, what in ((m, (3, 1), "m"), (l, (3, 1), "l"), (acc, (3, 2), "acc")):
            expect_shape(x, shape, f"{what} for 3 queries and values of 2 features")
        expect_close(m, scores.amax(-1, keepdim=True), "m after the last tile (the largest score of each row)")
        expect(bool((l >= 1 - 1e-6).all()), "l after the last tile should be at least 1: the max term adds exp(0).")
        outs.append(acc / l)
    expect_close(outs[0], outs[2], "acc / l with tiles of 1 key vs one tile of all 5 keys (it must not change)")
    expect_close(outs[1], outs[2], "acc / l with tiles of 2 keys vs one tile of all 5 keys (it must not change)")


def check_online_softmax_update(update) -> None:
    """One step from a state that has seen keys already, then whole folds: ragged tiles, float64, huge scores."""
    g = torch.Generator().manual_seed(8)
    m, l, acc = (
        torch.tensor([[1.0], [3.0], [-0.5]]),
        torch.tensor([[1.7], [2.2], [1.1]]),
        torch.randn(3, 2, generator=g),
    )
    s = torch.tensor([[2.5, 0.0, 1.0], [1.0, 2.0, -1.0], [0.5, -3.0, 0.7]])  # rows 0 and 2 raise the max, row 1 not
    v = torch.randn(3, 2, generator=g)
    expect_update(
        update,
        (m, l, acc, s, v),
        flash.online_softmax_update(m, l, acc, s, v),
        "one step from a state that has already seen some keys",
    )
    folds = [
        (torch.randn(5, 13, generator=g, dtype=torch.float64) * 4, 2, 3, "13 keys in tiles of 3 (float64)"),
        (torch.arange(12.0).reshape(2, 6) * 3, 4, 1, "scores whose max grows at every tile"),
        (torch.randn(3, 8, generator=g) * 3 + 500.0, 2, 4, "huge scores (around 500)"),
    ]
    for scores, d_v, tile, on in folds:
        values = torch.randn(scores.shape[1], d_v, generator=g, dtype=scores.dtype)
        got = _fold(update, scores, values, tile)
        ref = _fold(flash.online_softmax_update, scores, values, tile, graded=False)
        wrongs = {kind: _fold(_wrong_update(kind), scores, values, tile, graded=False) for kind in UPDATE_MISTAKES}
        _compare_states(got, ref, wrongs, on)
        expect_close(got[2] / got[1], torch.softmax(scores, -1) @ values, "acc / l after the last tile", on=on)


# ---- Exercise 3: tiled attention --------------------------------------------------------------


class _Watched(torch.Tensor):
    """A tensor that records the number of elements of the largest tensor computed from it."""

    largest = 0

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        out = super().__torch_function__(func, types, args, kwargs or {})
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                _Watched.largest = max(_Watched.largest, t.numel())
        return out

    def __deepcopy__(self, memo):
        """A watched copy (torch's default deepcopy refuses subclasses like this one)."""
        return self.as_subclass(torch.Tensor).clone().as_subclass(_Watched)


TILED_MISTAKES = {
    "no scale": "the scores are not divided by sqrt(d): use q k^T / sqrt(d), with d the width of q",
    "no rescale": "forgot to rescale l and acc by exp(m_old - m_new) when a tile raises the max",
    "ragged": "the last, shorter tile of keys is skipped: loop with range(0, T_k, block_k) and slice to the end",
    "square": "the loop over the keys runs over the number of queries: loop over k's length, T_k",
    "local": "the causal mask uses positions inside the tile: add the tile's offsets (query i + row, key j + column)",
    "strict": "the causal mask hides the diagonal too: a query may attend to itself (block key > query only)",
    "inverted": "the causal mask hides the past instead of the future: block the keys after the query",
}
CAUSAL_ONLY = ("local", "strict", "inverted")
TILED_FORBIDDEN = [
    flash.tiled_attention,
    attention.scaled_dot_product_attention,
    F.scaled_dot_product_attention,
    torch.softmax,
    F.softmax,
    torch.Tensor.softmax,
]


def _wrong_tiled(q, k, v, block_q, block_k, is_causal, kind):
    """Tiled attention with one mistake of TILED_MISTAKES."""
    T_q, T_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    keys_end = min(T_k, math.ceil(T_q / block_k) * block_k) if kind == "square" else T_k  # looped over T_q
    stop = keys_end - keys_end % block_k if kind == "ragged" else keys_end  # the short last tile dropped
    rows = []
    for i in range(0, T_q, block_q):
        qi = q[..., i : i + block_q, :] / (1.0 if kind == "no scale" else math.sqrt(d))  # (..., bq, d)
        m = torch.full((*qi.shape[:-1], 1), float("-inf"), dtype=q.dtype)
        l, acc = torch.zeros_like(m), torch.zeros(*qi.shape[:-1], v.shape[-1], dtype=q.dtype)
        for j in range(0, stop, block_k):
            s = qi @ k[..., j : j + block_k, :].transpose(-2, -1)  # (..., bq, bk)
            if is_causal:
                r = torch.arange(qi.shape[-2])[:, None] + (0 if kind == "local" else i)
                c = torch.arange(s.shape[-1])[None, :] + (0 if kind == "local" else j)
                s = s.masked_fill({"strict": c >= r, "inverted": c < r}.get(kind, c > r), float("-inf"))
            m_new = torch.maximum(m, s.amax(-1, keepdim=True))
            scale = torch.ones_like(m) if kind == "no rescale" else torch.exp(m - m_new)
            p = torch.exp(s - m_new)
            l, acc, m = l * scale + p.sum(-1, keepdim=True), acc * scale + p @ v[..., j : j + block_k, :], m_new
        rows.append(acc / l)
    return torch.cat(rows, dim=-2)


def _call_tiled(tiled_attention, q, k, v, block_q, block_k, is_causal, on):
    """The student's output on watched inputs; fails if a tensor far bigger than the inputs, output or a tile appeared.

    Twice the largest of those leaves room for padding the sequences to whole tiles; the score
    matrix of the hidden inputs (and a row of tiles in the 40-token case) is larger still.
    """
    lead = math.prod(torch.broadcast_shapes(q.shape[:-2], k.shape[:-2]))
    allowed = 2 * max(q.numel(), k.numel(), v.numel(), lead * q.shape[-2] * v.shape[-1], lead * block_q * block_k)
    watched = [x.clone().as_subclass(_Watched) for x in (q, k, v)]
    _Watched.largest = 0
    out = call(tiled_attention, *watched, block_q, block_k, is_causal=is_causal, forbidden=TILED_FORBIDDEN)
    expect(
        _Watched.largest <= allowed,
        f"your answer computes a tensor larger than one (block_q, block_k) tile of scores (on {on}), "
        "for example the whole score matrix: compute q k^T one key tile at a time.",
    )
    expect(isinstance(out, torch.Tensor), f"tiled_attention should return a tensor, got a {type(out).__name__}.")
    return out.as_subclass(torch.Tensor)


def _expect_tiled(out, ref, q, k, v, block_q, block_k, is_causal, on) -> None:
    expect_shape(out, ref.shape, f"the output (on {on})")
    expect_dtype(out, ref.dtype, f"the output (on {on})")
    kinds = [kind for kind in TILED_MISTAKES if is_causal or kind not in CAUSAL_ONLY]
    mistakes = {TILED_MISTAKES[kind]: _wrong_tiled(q, k, v, block_q, block_k, is_causal, kind) for kind in kinds}
    expect_close(out, ref, "the output", mistakes=mistakes, on=on)


def expect_tiled_attention(tiled_attention, q, k, v, block_q, block_k, expected, is_causal=False, on="") -> None:
    """The student's tiled attention on (q, k, v) must give `expected`; known mistakes named."""
    out = _call_tiled(tiled_attention, q, k, v, block_q, block_k, is_causal, on)
    _expect_tiled(out, expected, q, k, v, block_q, block_k, is_causal, on)


def _qkv(g, lead, T_q, T_k, d, d_v, dtype=torch.float32):
    shapes = ((*lead, T_q, d), (*lead, T_k, d), (*lead, T_k, d_v))
    return tuple(torch.randn(*shape, generator=g, dtype=dtype) for shape in shapes)


def tiled_attention_properties(tiled_attention) -> None:
    """Shape (..., T_q, d_v) and dtype kept; tile sizes change nothing; equal values come out; causal row 0 is v_0."""
    q, k, v = _qkv(torch.Generator().manual_seed(0), (2,), 5, 7, 3, 2)
    out = _call_tiled(tiled_attention, q, k, v, 2, 3, False, "2 sequences of 5 queries and 7 keys")
    expect_shape(out, (2, 5, 2), "the output for 2 sequences of 5 queries, 7 keys and values of 2 features")
    expect_dtype(out, torch.float32, "the output for float32 inputs")
    whole = _call_tiled(tiled_attention, q, k, v, 5, 7, False, "one tile of 5 x 7")
    first_6 = call(tiled_attention, q, k[..., :6, :], v[..., :6, :], 5, 6)  # what skipping the key tile 6..7 gives
    expect_close(
        out,
        whole,
        "the output with tiles of 2 x 3 vs one tile of 5 x 7 (it must not change)",
        mistakes={TILED_MISTAKES["ragged"]: first_6},
    )
    same = _call_tiled(tiled_attention, q, k, torch.full((2, 7, 2), 0.3), 2, 3, False, "values all 0.3")
    expect_close(same, torch.full((2, 5, 2), 0.3), "the output when every value is 0.3 (the weights sum to one)")
    causal = _call_tiled(tiled_attention, q, k, v, 2, 3, True, "a causal mask")
    expect_close(causal[:, 0], v[:, 0], "the first query's output with is_causal=True (it sees only the first key)")


def check_tiled_attention(tiled_attention) -> None:
    """Against course_utils.flash.tiled_attention (and plain masked attention) on batches, ragged tiles, causal masks."""
    g = torch.Generator().manual_seed(8)
    f32, f64 = torch.float32, torch.float64
    cases = [  # lead dims, T_q, T_k, d, d_v, block_q, block_k, is_causal, dtype, what kind of input
        ((2, 3), 7, 17, 4, 3, 3, 5, False, f32, "2 x 3 heads of 7 queries and 17 keys in tiles of 3 x 5"),
        ((2,), 9, 9, 2, 3, 4, 3, True, f32, "a causal mask, 9 queries and keys in tiles of 4 x 3"),
        ((1, 2), 5, 8, 3, 2, 2, 3, True, f64, "a causal mask, 5 queries and 8 keys in float64"),
        ((), 40, 40, 2, 3, 8, 8, False, f32, "40 queries and keys in tiles of 8, no batch dimension"),
        ((1,), 1, 1, 3, 2, 4, 4, True, f64, "a single query and key, tiles longer than the sequence"),
    ]
    for lead, T_q, T_k, d, d_v, bq, bk, causal, dtype, on in cases:
        q, k, v = _qkv(g, lead, T_q, T_k, d, d_v, dtype)
        out = _call_tiled(tiled_attention, q, k, v, bq, bk, causal, on)
        ref = flash.tiled_attention(q, k, v, bq, bk, is_causal=causal)
        plain, _ = attention.scaled_dot_product_attention(
            q, k, v, torch.ones(T_q, T_k).tril().bool() if causal else None
        )
        assert torch.allclose(ref, plain, atol=1e-5), "course_utils.flash disagrees with plain attention"
        _expect_tiled(out, ref, q, k, v, bq, bk, causal, on)
    q, k, v = _qkv(g, (2,), 6, 10, 4, 2)
    q = q * torch.tensor([1.0, 40.0, 0.01, 300.0, 1.0, 5.0])[:, None]  # scores from about 0.01 to about 1,000
    on = "queries of very different scales (scores up to about a thousand)"
    out = _call_tiled(tiled_attention, q, k, v, 4, 3, False, on)
    expect_close(out, flash.tiled_attention(q, k, v, 4, 3), "the output", on=on)


# ---- Exercise 4: the KV-cache append step -----------------------------------------------------


def _cache(B, h, t, t_new, d, seed, dtype=torch.float32):
    """(cache_k, cache_v, k_new, v_new): t cached positions and t_new new ones."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(B, h, n, d, generator=g, dtype=dtype) for n in (t, t, t_new, t_new))


def _pair(out):
    expect(
        isinstance(out, tuple) and len(out) == 2 and all(isinstance(x, torch.Tensor) for x in out),
        "append_kv should return a tuple (keys, values) of two tensors.",
    )
    return out


def append_kv_properties(append_kv) -> None:
    """(B, h, t + t_new, d) keys and values: first the cached positions, then the new ones; None is an empty cache."""
    ck, cv, kn, vn = _cache(2, 3, 4, 4, 5, seed=0)  # t == t_new: a concatenation along a wrong dimension still runs
    k, v = _pair(call(append_kv, ck, cv, kn, vn))
    wrong = {
        (2, 3, 4, 10): "the keys grew in the feature dimension",
        (2, 6, 4, 5): "the cache grew in the heads dimension",
        (4, 3, 4, 5): "the cache grew in the batch dimension",
    }
    for shape, message in wrong.items():
        expect(tuple(k.shape) != shape, f"{message}: concatenate along time, dim=-2.")
    expect_shape(k, (2, 3, 8, 5), "the keys for a cache of 4 positions and 4 new ones")
    expect_shape(v, (2, 3, 8, 5), "the values for a cache of 4 positions and 4 new ones")
    expect(
        not torch.equal(k[..., :4, :], kn), "the new keys were put before the cached ones: old positions come first."
    )
    expect(not torch.equal(v[..., 4:, :], kn), "the values hold keys: append v_new to cache_v.")
    expect(
        torch.equal(k[..., :4, :], ck) and torch.equal(v[..., :4, :], cv),
        "the first t positions of the keys and values should be the cached ones, unchanged: old positions come first.",
    )
    k0, v0 = _pair(call(append_kv, None, None, kn, vn, what="append_kv with an empty cache (None)"))
    expect(
        torch.equal(k0, kn) and torch.equal(v0, vn),
        "appended to an empty cache (None), the new keys and values are the whole cache.",
    )


def check_append_kv(append_kv) -> None:
    """One new token (the usual generation step), more new positions than cached ones, float64, an empty cache."""
    cases = [
        ((1, 2, 6, 1, 8), torch.float32, "one new token after 6 cached ones"),
        ((3, 1, 1, 2, 3), torch.float32, "a batch of 3, 2 new positions after 1 cached one"),
        ((2, 2, 3, 3, 2), torch.float64, "float64 keys and values"),
    ]
    for seed, ((B, h, t, t_new, d), dtype, on) in enumerate(cases, start=1):
        ck, cv, kn, vn = _cache(B, h, t, t_new, d, seed, dtype)
        k, v = _pair(call(append_kv, ck, cv, kn, vn))
        ref_k, ref_v = kvcache.append_kv(ck, cv, kn, vn)
        for x, ref, what in ((k, ref_k, "the keys"), (v, ref_v, "the values")):
            expect_shape(x, ref.shape, f"{what} (on {on})")
            expect_dtype(x, dtype, f"{what} (on {on})")
        old_first = "the new keys were put before the cached ones: old positions come first"
        expect_close(k, ref_k, "the keys", mistakes={old_first: torch.cat([kn, ck], -2)}, on=on)
        mistakes = {
            "the values hold keys: append v_new to cache_v": torch.cat([cv, kn], -2),
            "the new values were put before the cached ones: old positions come first": torch.cat([vn, cv], -2),
        }
        expect_close(v, ref_v, "the values", mistakes=mistakes, on=on)
    *_, kn, vn = _cache(1, 4, 0, 3, 6, seed=9)
    k0, v0 = _pair(call(append_kv, None, None, kn, vn, what="append_kv with an empty cache (None)"))
    expect_close(k0, kn, "the keys appended to an empty cache (None)")
    expect_close(v0, vn, "the values appended to an empty cache (None)")
