# expect: padding positions are not ignored
def smoothed_loss(logits, target, eps, pad_id):
    N, V = logits.shape
    logp = logits.log_softmax(-1)
    q = torch.full_like(logp, eps / (V - 1))
    q[:, pad_id] = 0.0
    q[torch.arange(N), target] += 1 - eps
    return -(q * logp).sum(-1).mean()
