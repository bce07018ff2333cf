# expect: the merged heads are returned without W_O
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
        if mask.dim() == 3:
            mask = mask[:, None]
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return (weights @ v).transpose(1, 2).reshape(B, T_q, D), weights
