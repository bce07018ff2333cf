# expect: changed its input `logits` in place
def smoothed_loss(logits, target, eps, pad_id):
    N, V = logits.shape
    logits -= logits.max(dim=-1, keepdim=True).values  # "for stability", but on the caller's tensor
    logp = logits - logits.exp().sum(dim=-1, keepdim=True).log()
    q = torch.full_like(logp, eps / (V - 1))
    q[:, pad_id] = 0.0
    q[torch.arange(N), target] += 1 - eps
    return -(q * logp).sum(dim=-1)[target != pad_id].mean()
