# expect: the triangle is the wrong way round
def decoder_mask(tgt, pad_id):
    T = tgt.shape[1]
    return torch.ones(T, T, dtype=torch.bool).triu()[None] & (tgt != pad_id)[:, None, :]
