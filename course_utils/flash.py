"""FlashAttention's idea on a CPU: exact attention in tiles with the online softmax, O(n) memory.

Notebook 08 builds this. Plain attention materialises the (n, n) score matrix, then its
softmax: 2 n^2 floats (2 GiB at n = 16k in float32) for a result of only n * d floats.
The softmax needs a whole row (its maximum and its sum) before any weight is known, which
seems to force that matrix. It does not: visit the keys tile by tile and keep, per query,

    m   the running maximum of the scores seen so far,
    l   the running sum of exp(score - m),
    acc the running sum of exp(score - m) * value,

rescaling l and acc by exp(m_old - m_new) whenever a tile raises the maximum. After the
last tile, acc / l is exactly softmax(scores) @ V (Milakov & Gimelshein 2018; Dao et al.,
FlashAttention, 2022). Only a (block_q, block_k) tile of scores exists at any time.

Concessions, admitted up front:
- Python loops over tiles: the point is the algorithm and its memory, not speed. The real
  thing is a fused GPU kernel that keeps a tile in on-chip SRAM; PyTorch's
  `F.scaled_dot_product_attention` dispatches to such kernels (flash / memory-efficient on
  GPU, a fused tiled kernel on CPU).
- Masks: only the causal mask (`is_causal`), the one long-sequence decoders need. The
  update treats a running max of -inf as "nothing seen yet", so a fully blocked tile
  adds nothing and no NaN appears.
- Its memory is measured with `course_utils.measure.peak_rss` (Linux's /proc high-water mark).
"""

from __future__ import annotations

import math

import torch

from course_utils.checks import check_int, check_tensor

__all__ = ["online_softmax_update", "tiled_attention"]


def online_softmax_update(
    m: torch.Tensor, l: torch.Tensor, acc: torch.Tensor, scores: torch.Tensor, v_tile: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fold one tile of keys into the running softmax statistics of a block of queries.

    m: (..., T_q, 1) running max (start at -inf)   l: (..., T_q, 1) running sum (start at 0)
    acc: (..., T_q, d_v) running unnormalised output (start at 0)
    scores: (..., T_q, B) this tile's scores q k^T / sqrt(d) (-inf where blocked)
    v_tile: (..., B, d_v) this tile's values
    returns the new (m, l, acc); after the last tile the output is acc / l.

    Why the rescale: old terms were computed as exp(s - m_old); with the new maximum they
    must read exp(s - m_new) = exp(s - m_old) * exp(m_old - m_new).

    >>> s = torch.tensor([[1.0, 2.0, 3.0, 4.0]]); v = torch.eye(4)
    >>> m, l, acc = torch.full((1, 1), float("-inf")), torch.zeros(1, 1), torch.zeros(1, 4)
    >>> for t in (slice(0, 2), slice(2, 4)):
    ...     m, l, acc = online_softmax_update(m, l, acc, s[:, t], v[t])
    >>> torch.allclose(acc / l, torch.softmax(s, -1))
    True
    """
    m_new = torch.maximum(m, scores.amax(dim=-1, keepdim=True))  # (..., T_q, 1)
    m_safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)  # nothing seen yet: no -inf - -inf
    scale = torch.exp(m - m_safe)  # (..., T_q, 1) shrink the old terms
    p = torch.exp(scores - m_safe)  # (..., T_q, B) in [0, 1]
    l_new = l * scale + p.sum(dim=-1, keepdim=True)
    acc_new = acc * scale + p @ v_tile  # (..., T_q, d_v)
    return m_new, l_new, acc_new


def _check(fn: str, q, k, v, block_q, block_k) -> None:
    """q, k, v floating point (..., T, d) with q and k sharing d_k and k and v the keys; positive tile sizes."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_tensor(fn, name, x, min_dim=2, dtype="float", shape="(..., T, d)")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"{fn}: q and k must share d_k, got q {tuple(q.shape)} and k {tuple(k.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"{fn}: k and v must have the same number of keys, got k {tuple(k.shape)} and v {tuple(v.shape)}"
        )
    check_int(fn, "block_q", block_q)
    check_int(fn, "block_k", block_k)


def tiled_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_q: int = 128, block_k: int = 128, is_causal: bool = False
) -> torch.Tensor:
    """Exact softmax(q k^T / sqrt(d)) v, computed tile by tile; never forms the (T_q, T_k) matrix.

    q: (..., T_q, d)   k: (..., T_k, d)   v: (..., T_k, d_v)   ->   (..., T_q, d_v)
    Any tile sizes work (the last tile may be shorter). Extra memory: one (block_q, block_k)
    tile of scores plus the running m, l, acc of one query block, instead of T_q * T_k.
    is_causal: query i sees keys 0..i (top-left aligned); key tiles wholly in the future are skipped.
    """
    _check("tiled_attention", q, k, v, block_q, block_k)
    T_q, T_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    out = q.new_empty(*lead, T_q, v.shape[-1])
    scale = 1.0 / math.sqrt(d)
    for i in range(0, T_q, block_q):
        qi = q[..., i : i + block_q, :] * scale  # (..., bq, d)
        bq = qi.shape[-2]
        m = q.new_full((*lead, bq, 1), float("-inf"))
        l = q.new_zeros(*lead, bq, 1)
        acc = q.new_zeros(*lead, bq, v.shape[-1])
        stop = min(T_k, i + bq) if is_causal else T_k  # causal: no key after the last query
        for j in range(0, stop, block_k):
            s = qi @ k[..., j : j + block_k, :].transpose(-2, -1)  # (..., bq, bk): the only scores in memory
            if is_causal and j + s.shape[-1] > i + 1:  # tile crosses the diagonal
                rows = torch.arange(i, i + bq, device=q.device)[:, None]
                cols = torch.arange(j, j + s.shape[-1], device=q.device)[None, :]
                s = s.masked_fill(cols > rows, float("-inf"))
            m, l, acc = online_softmax_update(m, l, acc, s, v[..., j : j + block_k, :])
        out[..., i : i + bq, :] = acc / l.clamp_min(torch.finfo(l.dtype).tiny)
    return out
