# expect: the positions were repeated instead of the heads
def expand_kv(x, n_rep):
    """(B, h_kv, T, d) -> (B, h_kv * n_rep, T, d): each key/value head repeated for its n_rep query heads."""
    B, h, T, d = x.shape
    return x.repeat_interleave(n_rep, dim=2).reshape(B, h * n_rep, T, d)
