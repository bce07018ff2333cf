# expect: raised
def attend_to_cache(q, k_cache, v_cache):
    """(B, h, 1, d) queries over (B, h_kv, t, d) cached keys/values -> (B, h, 1, d)."""
    return (q @ k_cache.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1) @ v_cache
