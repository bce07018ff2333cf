# expect: forgot to rescale acc
def online_softmax_update(m, l, acc, scores, v_tile):
    m_new = torch.maximum(m, scores.max(dim=-1, keepdim=True).values)
    scale = torch.exp(m - m_new)
    p = torch.exp(scores - m_new)
    l_new = l * scale + p.sum(dim=-1, keepdim=True)
    acc_new = acc + p @ v_tile
    return m_new, l_new, acc_new
