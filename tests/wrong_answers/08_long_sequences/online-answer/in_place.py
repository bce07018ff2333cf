# expect: changed its input `l` in place
def online_softmax_update(m, l, acc, scores, v_tile):
    m_new = torch.maximum(m, scores.max(dim=-1, keepdim=True).values)
    scale = torch.exp(m - m_new)
    p = torch.exp(scores - m_new)
    l *= scale
    l += p.sum(dim=-1, keepdim=True)
    return m_new, l, acc * scale + p @ v_tile
