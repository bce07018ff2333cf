# expect: the (B, T_q, T_k) mask is lined up with the heads instead of the batch
def multi_head_attention(mha, query, key, value, mask=None):
    h = mha.n_heads
    q, k, v = mha.q_proj(query), mha.k_proj(key), mha.v_proj(value)
    B, T_q, D = q.shape
    T_k = k.shape[1]
    q = q.reshape(B, T_q, h, D // h).transpose(1, 2)
    k = k.reshape(B, T_k, h, D // h).transpose(1, 2)
    v = v.reshape(B, T_k, h, D // h).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(D // h)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # (B, T_q, T_k) broadcast against (B, h, T_q, T_k)
    weights = torch.softmax(scores, dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(B, T_q, D)
    return mha.out_proj(out), weights
