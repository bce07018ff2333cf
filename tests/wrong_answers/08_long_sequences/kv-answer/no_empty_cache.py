# expect: append_kv with an empty cache (None) raised
def append_kv(cache_k, cache_v, k_new, v_new):
    return torch.cat([cache_k, k_new], dim=-2), torch.cat([cache_v, v_new], dim=-2)
