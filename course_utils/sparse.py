"""BigBird's sparse attention: window, global and random patterns, and attention that skips the zeros.

Notebook 08 builds these. Full attention scores every (query, key) pair: n^2 pairs, so
time and memory grow quadratically with the sequence length n. BigBird (Zaheer et al.,
2020) lets each query see only
- a sliding **window** of neighbours (local context; most of what language needs),
- a few **global** tokens that see, and are seen by, everyone (a hub: any two tokens are
  two hops apart),
- a few **random** keys (shortcuts that keep the graph well connected),
so the number of attended pairs grows linearly with n.

Conventions: masks are boolean, `True` = may attend, shape (n_queries, n_keys), the
convention of `course_utils.attention` and `F.scaled_dot_product_attention`.

Two granularities, as in the paper:
- token level: `sliding_window_mask(n, window)` (the exercise of notebook 08);
- block level: a *layout* (n_blocks, n_blocks) says which key blocks each query block
  sees; `expand_layout` turns it into a token mask. Only block-level patterns can be
  computed cheaply on hardware that likes dense tiles, so `block_sparse_attention`
  takes a layout.

Concessions, admitted up front:
- `block_sparse_attention` gathers the attended key/value blocks of every query block
  into a dense tensor (like BigBird's "blockified" implementation): it pads rows that
  see fewer blocks up to the busiest non-global row and masks the padding. Query blocks
  that see *every* block (global rows) are computed as ordinary dense attention.
- The random blocks are drawn once per call from a `torch.Generator`; BigBird draws
  them once per layer and head. Pass a seed to get the same pattern twice.
- n must be a multiple of the block size (pad your sequence; BigBird does too).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from course_utils.attention import scaled_dot_product_attention
from course_utils.checks import check_int, check_tensor

__all__ = [
    "sliding_window_mask",
    "global_mask",
    "window_layout",
    "global_layout",
    "random_layout",
    "bigbird_layout",
    "expand_layout",
    "bigbird_mask",
    "attended_pairs",
    "layout_indices",
    "block_sparse_attention",
]


# ---------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------
def _check_layout(fn: str, layout) -> None:
    """A square (n_blocks, n_blocks) boolean block layout, True = the query block may attend to the key block."""
    check_tensor(fn, "layout", layout, shape="boolean (n_blocks, n_blocks)")
    if layout.dtype != torch.bool:
        raise TypeError(f"{fn}: layout must be a boolean torch.Tensor (True = may attend), got {layout.dtype}")
    if layout.dim() != 2 or layout.shape[0] != layout.shape[1]:
        raise ValueError(f"{fn}: layout must be square (n_blocks, n_blocks), got shape {tuple(layout.shape)}")


# ---------------------------------------------------------------------------------------------
# token-level masks
# ---------------------------------------------------------------------------------------------
def sliding_window_mask(n: int, window: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(n, n) bool: query i may attend to key j when |i - j| <= window (window keys on each side).

    Symmetric (j sees i whenever i sees j), 2*window + 1 keys per row away from the ends;
    window = 0 is the diagonal (each token sees only itself).

    >>> sliding_window_mask(4, 1).int()
    tensor([[1, 1, 0, 0],
            [1, 1, 1, 0],
            [0, 1, 1, 1],
            [0, 0, 1, 1]], dtype=torch.int32)
    """
    check_int("sliding_window_mask", "n", n, 1)
    check_int("sliding_window_mask", "window", window, 0)
    pos = torch.arange(n, device=device)
    return (pos[:, None] - pos[None, :]).abs() <= window  # (n, n)


def global_mask(n: int, n_global: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(n, n) bool: the first n_global tokens attend to all tokens and all tokens attend to them.

    >>> global_mask(4, 1).int()
    tensor([[1, 1, 1, 1],
            [1, 0, 0, 0],
            [1, 0, 0, 0],
            [1, 0, 0, 0]], dtype=torch.int32)
    """
    check_int("global_mask", "n", n, 1)
    check_int("global_mask", "n_global", n_global, 0)
    is_global = torch.arange(n, device=device) < n_global  # (n,)
    return is_global[:, None] | is_global[None, :]  # row (sees all) | column (seen by all)


# ---------------------------------------------------------------------------------------------
# block-level layouts (n_blocks, n_blocks): which key blocks each query block sees
# ---------------------------------------------------------------------------------------------
def window_layout(n_blocks: int, window: int = 1) -> torch.Tensor:
    """Block b sees blocks b - window .. b + window (BigBird uses window = 1: three blocks).

    >>> window_layout(3, 1).int()
    tensor([[1, 1, 0],
            [1, 1, 1],
            [0, 1, 1]], dtype=torch.int32)
    """
    check_int("window_layout", "n_blocks", n_blocks, 1)
    check_int("window_layout", "window", window, 0)
    return sliding_window_mask(n_blocks, window)


def global_layout(n_blocks: int, n_global: int = 1) -> torch.Tensor:
    """The first n_global blocks see every block, and every block sees them."""
    check_int("global_layout", "n_blocks", n_blocks, 1)
    check_int("global_layout", "n_global", n_global, 0)
    return global_mask(n_blocks, n_global)


def random_layout(
    n_blocks: int,
    n_random: int = 1,
    generator: Optional[torch.Generator] = None,
    exclude: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Each query block sees n_random distinct key blocks drawn uniformly at random.

    exclude: optional (n_blocks, n_blocks) bool layout of blocks already seen (window, global);
    random blocks are drawn among the others, as BigBird does, so they add new connections.
    A row with fewer than n_random candidates takes all of them.

    >>> random_layout(4, 2, torch.Generator().manual_seed(0)).sum(dim=1).tolist()
    [2, 2, 2, 2]
    """
    check_int("random_layout", "n_blocks", n_blocks, 1)
    check_int("random_layout", "n_random", n_random, 0)
    if exclude is not None:
        _check_layout("random_layout", exclude)
        if exclude.shape[0] != n_blocks:
            raise ValueError(f"random_layout: exclude must be ({n_blocks}, {n_blocks}), got {tuple(exclude.shape)}")
    layout = torch.zeros(n_blocks, n_blocks, dtype=torch.bool)
    if n_random == 0:
        return layout
    keys = torch.rand(n_blocks, n_blocks, generator=generator)  # a random priority per (row, block)
    if exclude is not None:
        keys = keys.masked_fill(exclude.cpu(), -1.0)  # excluded blocks come last
    top = keys.topk(min(n_random, n_blocks), dim=1)  # n_random best per row
    layout.scatter_(1, top.indices, top.values >= 0)  # never pick an excluded block
    return layout


def bigbird_layout(
    n_blocks: int, window: int = 1, n_global: int = 1, n_random: int = 1, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """The union window | global | random at block level (BigBird-ITC: global blocks are sequence blocks).

    >>> bigbird_layout(4, window=1, n_global=1, n_random=0).int()
    tensor([[1, 1, 1, 1],
            [1, 1, 1, 0],
            [1, 1, 1, 1],
            [1, 0, 1, 1]], dtype=torch.int32)
    """
    fixed = window_layout(n_blocks, window) | global_layout(n_blocks, n_global)
    return fixed | random_layout(n_blocks, n_random, generator, exclude=fixed)


def expand_layout(layout: torch.Tensor, block_size: int) -> torch.Tensor:
    """(n_blocks, n_blocks) block layout -> (n, n) token mask, n = n_blocks * block_size.

    >>> expand_layout(torch.tensor([[True, False], [True, True]]), 2).int()
    tensor([[1, 1, 0, 0],
            [1, 1, 0, 0],
            [1, 1, 1, 1],
            [1, 1, 1, 1]], dtype=torch.int32)
    """
    _check_layout("expand_layout", layout)
    check_int("expand_layout", "block_size", block_size, 1)
    return layout.repeat_interleave(block_size, 0).repeat_interleave(block_size, 1)


def bigbird_mask(
    n: int, block_size: int, window: int = 1, n_global: int = 1, n_random: int = 1, seed: int = 0
) -> torch.Tensor:
    """(n, n) token mask of a BigBird layout; window, n_global, n_random count *blocks*."""
    check_int("bigbird_mask", "n", n, 1)
    check_int("bigbird_mask", "block_size", block_size, 1)
    if n % block_size:
        raise ValueError(f"bigbird_mask: n={n} must be a multiple of block_size={block_size}")
    g = torch.Generator().manual_seed(seed)
    return expand_layout(bigbird_layout(n // block_size, window, n_global, n_random, g), block_size)


def attended_pairs(mask: torch.Tensor) -> int:
    """How many (query, key) pairs a mask lets through: the cost of attention with it.

    Full attention: n^2. A window of w: about n (2w + 1). Linear in n for fixed w.

    >>> attended_pairs(sliding_window_mask(5, 1))   # 5 * 3 - 2 at the ends
    13
    """
    check_tensor("attended_pairs", "mask", mask, shape="boolean (n, n)")
    if mask.dtype != torch.bool:
        raise TypeError(f"attended_pairs: mask must be a boolean torch.Tensor (True = may attend), got {mask.dtype}")
    return int(mask.sum())


# ---------------------------------------------------------------------------------------------
# block-sparse attention: compute only the attended blocks
# ---------------------------------------------------------------------------------------------
def layout_indices(layout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which key blocks each query block sees, padded to a rectangle for gathering.

    Returns (dense_rows, sparse_rows, idx, valid):
    - dense_rows: query blocks that see every block (global rows), computed densely;
    - sparse_rows (R,): the other query blocks;
    - idx (R, K): the key blocks of each sparse row, K = the most any sparse row sees,
      padded with block 0; valid (R, K): False on the padding.

    >>> _, rows, idx, valid = layout_indices(torch.tensor([[1, 1, 1], [0, 1, 0], [1, 0, 1]]).bool())
    >>> rows.tolist(), idx.tolist(), valid.tolist()
    ([1, 2], [[1, 0], [0, 2]], [[True, False], [True, True]])
    """
    _check_layout("layout_indices", layout)
    counts = layout.sum(dim=1)  # (n_blocks,) key blocks per row
    if (counts == 0).any():
        raise ValueError(
            f"layout_indices: query blocks {torch.nonzero(counts == 0).flatten().tolist()} "
            "attend to no key block; every row of the layout needs at least one True"
        )
    full = counts == layout.shape[1]
    dense_rows = torch.nonzero(full).flatten()
    sparse_rows = torch.nonzero(~full).flatten()
    sub = layout[sparse_rows]  # (R, n_blocks)
    K = int(sub.sum(dim=1).max()) if len(sparse_rows) else 0
    # stable sort puts each row's attended blocks first, in increasing order
    order = torch.sort((~sub).to(torch.int8), dim=1, stable=True).indices[:, :K]  # (R, K)
    valid = torch.gather(sub, 1, order)  # (R, K)
    idx = torch.where(valid, order, torch.zeros_like(order))
    return dense_rows, sparse_rows, idx, valid


def block_sparse_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: torch.Tensor, block_size: int
) -> torch.Tensor:
    """Attention restricted to a block layout, computing only the attended (query block, key block) pairs.

    q, k: (..., n, d)   v: (..., n, d_v)   layout: (n/block_size, n/block_size) bool.
    returns (..., n, d_v), equal to `scaled_dot_product_attention(q, k, v, expand_layout(layout, b))[0]`
    but with O(n * K * b * d) work instead of O(n^2 d), K = key blocks per query block.

    How: split the sequence into blocks (..., n_blocks, b, d); for each (non-global) query
    block gather its K key and value blocks into (..., R, K*b, d) and run ordinary attention
    per block with a mask only for the padding; global query blocks attend densely.
    """
    fn = "block_sparse_attention"
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_tensor(fn, name, x, min_dim=2, dtype="float", shape="(..., n, d)")
    _check_layout(fn, layout)
    check_int(fn, "block_size", block_size, 1)
    n = q.shape[-2]
    if k.shape[-2] != n or v.shape[-2] != n or k.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"{fn}: self-attention shapes expected, q (..., n, d), k (..., n, d), v (..., n, d_v); "
            f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if n % block_size:
        raise ValueError(f"{fn}: the sequence length n={n} must be a multiple of block_size={block_size}")
    nb = n // block_size
    if layout.shape[0] != nb:
        raise ValueError(
            f"{fn}: layout must be ({nb}, {nb}) for n={n} and block_size={block_size}, got {tuple(layout.shape)}"
        )
    dense_rows, sparse_rows, idx, valid = layout_indices(layout.cpu())
    *lead, _, d = q.shape
    b, d_v = block_size, v.shape[-1]
    out = q.new_empty(*lead, nb, b, d_v)  # (..., nb, b, d_v)
    qb = q.reshape(*lead, nb, b, d)  # (..., nb, b, d)
    kb = k.reshape(*lead, nb, b, d)
    vb = v.reshape(*lead, nb, b, d_v)
    dev = q.device

    if len(sparse_rows):
        rows, idx, valid = sparse_rows.to(dev), idx.to(dev), valid.to(dev)
        R, K = idx.shape
        k_g = kb[..., idx, :, :].reshape(*lead, R, K * b, d)  # (..., R, K*b, d) gathered keys
        v_g = vb[..., idx, :, :].reshape(*lead, R, K * b, d_v)  # (..., R, K*b, d_v)
        q_s = qb[..., rows, :, :]  # (..., R, b, d)
        scores = q_s @ k_g.transpose(-2, -1) / math.sqrt(d)  # (..., R, b, K*b): the only scores
        if not bool(valid.all()):
            pad = valid.repeat_interleave(b, dim=1)[:, None, :]  # (R, 1, K*b)
            scores = scores.masked_fill(~pad, float("-inf"))
        out[..., rows, :, :] = scores.softmax(dim=-1) @ v_g  # (..., R, b, d_v)
    if len(dense_rows):
        rows = dense_rows.to(dev)
        q_d = qb[..., rows, :, :].reshape(*lead, len(rows) * b, d)  # global queries see everything
        o_d, _ = scaled_dot_product_attention(q_d, k, v)
        out[..., rows, :, :] = o_d.reshape(*lead, len(rows), b, d_v)
    return out.reshape(*lead, n, d_v)
