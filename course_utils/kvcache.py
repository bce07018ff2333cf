"""The KV-cache append step, the idea behind fast generation (notebook 08's exercise).

Generating token t+1 needs attention of the newest query over the keys and values of *all*
t + 1 tokens. Without a cache, each step re-runs the model on the whole prefix: step t costs
O(t) for every linear layer and O(t^2) for attention. In a causal decoder the keys and
values of old tokens never change (they see only the past), so we keep them and each step
appends the new token's key and value:

    cache per layer: k, v  (B, h, t, d_head)   --append on dim -2 (time)-->  (B, h, t + 1, d_head)

This is the textbook version, a `torch.cat` per step (an O(t) copy, simple and exact).
`course_utils.gpt.KVCache` (notebook 05) does the same with preallocated buffers, and its
`GPT.generate(use_cache=True)` is what notebook 08 times; `tests/test_kvcache.py` checks that
both give the same keys and values.
"""

from __future__ import annotations

from typing import Optional

import torch

from course_utils.checks import check_tensor

__all__ = ["append_kv"]


def append_kv(
    cache_k: Optional[torch.Tensor], cache_v: Optional[torch.Tensor], k_new: torch.Tensor, v_new: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Append the new positions' keys and values after the cached ones, along time (dim -2).

    cache_k, cache_v: (B, h, t, d) or None (empty cache)   k_new, v_new: (B, h, t_new, d)
    returns (B, h, t + t_new, d) each; the old positions come first (position order).

    >>> k, v = append_kv(None, None, torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4))
    >>> tuple(append_kv(k, v, torch.ones(1, 2, 1, 4), torch.ones(1, 2, 1, 4))[0].shape)
    (1, 2, 4, 4)
    """
    for name, x in (("k_new", k_new), ("v_new", v_new)):
        check_tensor("append_kv", name, x, min_dim=2, shape="(..., t_new, d)")
    if (cache_k is None) != (cache_v is None):
        raise ValueError("append_kv: cache_k and cache_v must both be None (empty cache) or both tensors")
    if cache_k is None:
        return k_new, v_new
    for name, old, new in (("keys", cache_k, k_new), ("values", cache_v, v_new)):
        if old.shape[:-2] != new.shape[:-2] or old.shape[-1] != new.shape[-1]:
            raise ValueError(
                f"append_kv: cached {name} {tuple(old.shape)} and new {name} {tuple(new.shape)} "
                "must agree on every dimension except time (-2)"
            )
    return torch.cat([cache_k, k_new], dim=-2), torch.cat([cache_v, v_new], dim=-2)
