# expect: no max subtracted inside exp
def online_softmax_update(m, l, acc, scores, v_tile):
    m_new = torch.maximum(m, scores.max(dim=-1, keepdim=True).values)
    p = torch.exp(scores)
    return m_new, l + p.sum(dim=-1, keepdim=True), acc + p @ v_tile
