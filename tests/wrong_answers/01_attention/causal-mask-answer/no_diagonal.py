# expect: a query may not attend to itself
def causal_padding_mask(lengths, T):
    real = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    return torch.ones(T, T, dtype=torch.bool).tril(-1)[None] & real[:, None, :]
