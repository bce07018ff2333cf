# expect: the identity (residual connection) is missing
def rollout(attentions):
    result = None
    for a in attentions:
        a = a.mean(dim=1)
        a = a / a.sum(dim=-1, keepdim=True)
        result = a if result is None else a @ result
    return result
