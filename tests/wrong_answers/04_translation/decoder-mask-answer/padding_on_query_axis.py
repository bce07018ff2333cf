# expect: the padding mask is on the wrong axis
def decoder_mask(tgt, pad_id):
    T = tgt.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    real = tgt != pad_id
    return causal[None] & real[:, :, None]
