# expect: the padding blocks queries (rows) instead of keys (columns)
def causal_padding_mask(lengths, T):
    real = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    return torch.ones(T, T, dtype=torch.bool).tril()[None] & real[:, :, None]
