# expect: combined with OR
def decoder_mask(tgt, pad_id):
    T = tgt.shape[1]
    return torch.ones(T, T, dtype=torch.bool).tril()[None] | (tgt != pad_id)[:, None, :]
