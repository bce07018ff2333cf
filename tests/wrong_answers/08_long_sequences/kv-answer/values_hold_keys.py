# expect: the values hold keys
def append_kv(cache_k, cache_v, k_new, v_new):
    if cache_k is None:
        return k_new, v_new
    return torch.cat([cache_k, k_new], dim=-2), torch.cat([cache_v, k_new], dim=-2)
