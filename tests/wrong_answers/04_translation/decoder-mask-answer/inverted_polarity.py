# expect: the polarity is inverted
def decoder_mask(tgt, pad_id):
    T = tgt.shape[1]
    blocked_future = torch.ones(T, T, dtype=torch.bool).triu(1)
    is_pad = tgt == pad_id
    return blocked_future[None] | is_pad[:, None, :]  # True = blocked, like nn.Transformer
