# expect: expected torch.bool
def causal_padding_mask(lengths, T):
    real = (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).float()
    return torch.ones(T, T).tril()[None] * real[:, None, :]
