# expect: a causal mask
def attend_to_cache(q, k_cache, v_cache):
    """(B, h, 1, d) queries over (B, h_kv, t, d) cached keys/values -> (B, h, 1, d)."""
    n_rep = q.shape[1] // k_cache.shape[1]
    k = k_cache.repeat_interleave(n_rep, dim=1)
    v = v_cache.repeat_interleave(n_rep, dim=1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, 1, t)
    mask = torch.ones(1, k.shape[-2], dtype=torch.bool).tril()  # the causal mask of a (1, t) block
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1) @ v
