# expect: every sentence got the first sentence's padding
def decoder_mask(tgt, pad_id):
    B, T = tgt.shape
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    return (causal & (tgt[0] != pad_id)[None, :]).expand(B, T, T)  # written for one sentence
