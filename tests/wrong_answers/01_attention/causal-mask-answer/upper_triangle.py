# expect: the future is allowed and the past blocked
def causal_padding_mask(lengths, T):
    real = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    return torch.ones(T, T, dtype=torch.bool).triu()[None] & real[:, None, :]
