# expect: the padding is ignored
def causal_padding_mask(lengths, T):
    return torch.ones(T, T, dtype=torch.bool).tril()[None].repeat(len(lengths), 1, 1)
