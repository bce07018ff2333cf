# expect: the scores are not divided by sqrt(d_head)
def attend_to_cache(q, k_cache, v_cache):
    """(B, h, 1, d) queries over (B, h_kv, t, d) cached keys/values -> (B, h, 1, d)."""
    n_rep = q.shape[1] // k_cache.shape[1]
    k = k_cache.repeat_interleave(n_rep, dim=1)
    v = v_cache.repeat_interleave(n_rep, dim=1)
    return (q @ k.transpose(-2, -1)).softmax(dim=-1) @ v
