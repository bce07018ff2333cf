# expect: the heads are tiled
def expand_kv(x, n_rep):
    """(B, h_kv, T, d) -> (B, h_kv * n_rep, T, d): each key/value head repeated for its n_rep query heads."""
    return x.repeat(1, n_rep, 1, 1)
