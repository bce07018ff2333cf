# expect: the key/value heads are tiled
def attend_to_cache(q, k_cache, v_cache):
    """(B, h, 1, d) queries over (B, h_kv, t, d) cached keys/values -> (B, h, 1, d)."""
    n_rep = q.shape[1] // k_cache.shape[1]
    k = k_cache.repeat(1, n_rep, 1, 1)
    v = v_cache.repeat(1, n_rep, 1, 1)
    return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1) @ v
