# expect: True marks the blocked positions
def causal_padding_mask(lengths, T):
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    pad = torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]
    return future[None] | pad[:, None, :]
