# expect: the rescale factor is inverted
def online_softmax_update(m, l, acc, scores, v_tile):
    m_new = torch.maximum(m, scores.max(dim=-1, keepdim=True).values)
    scale = torch.exp(m_new - m)
    p = torch.exp(scores - m_new)
    return m_new, l * scale + p.sum(dim=-1, keepdim=True), acc * scale + p @ v_tile
