# expect: the padding mask is missing
def decoder_mask(tgt, pad_id):
    B, T = tgt.shape
    return torch.ones(T, T, dtype=torch.bool).tril().expand(B, T, T)
