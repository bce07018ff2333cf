# expect: log_softmax
def smoothed_loss(logits, target, eps, pad_id):
    N, V = logits.shape
    p = logits.softmax(-1)
    q = torch.full_like(p, eps / (V - 1))
    q[:, pad_id] = 0.0
    q[torch.arange(N), target] += 1 - eps
    return -(q * p).sum(-1)[target != pad_id].mean()
